from seg_perception.cli import main

raise SystemExit(main())
