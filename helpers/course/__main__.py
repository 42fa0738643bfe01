"""``python -m helpers.course`` (``make course``): run every chapter in order; see :mod:`helpers.course.runner`."""

import sys

from helpers.course.runner import main

sys.exit(main())
