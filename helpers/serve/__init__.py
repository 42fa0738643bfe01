"""The model in production: batch scoring (pandas, Spark), the web service, the stream, and their environment and container."""
