"""Settings, the TLC's files (downloaded, cached or their offline twin) and the features every stage shares."""
