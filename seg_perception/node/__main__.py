import sys

from seg_perception.node import main

sys.exit(main())
