import sys

from futon.cli import main

sys.exit(main())
