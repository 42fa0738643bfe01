"""Chapter 05's pipelines: what Mage's blocks share, running their files, and Mage's runtime and REST API."""
