from depictiod.cli import main

raise SystemExit(main())
