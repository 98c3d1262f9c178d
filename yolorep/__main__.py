from yolorep.cli import main

raise SystemExit(main())
