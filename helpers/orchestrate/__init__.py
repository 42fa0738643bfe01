"""Chapter 05's pipelines: the steps Mage's blocks share, and Mage's runtime and REST API."""
