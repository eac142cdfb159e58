"""``python -m bench`` (``make bench``); ``python -m bench --help`` lists the options."""

import sys

from bench.run import main

sys.exit(main())
