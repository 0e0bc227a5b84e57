import sys

from seqae.cli import main

sys.exit(main())
