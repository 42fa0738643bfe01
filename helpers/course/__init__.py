"""The course itself: the chapter runner, the committed form, the exercises and their checks, chapter 01's checks."""
