from sa_hygiene.cli import main

raise SystemExit(main())
