"""The exercises of each chapter, with the checks that run the code a learner writes."""
