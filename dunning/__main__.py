import sys

from dunning.cli import main

sys.exit(main())
