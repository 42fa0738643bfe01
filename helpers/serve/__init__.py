"""The model in production: batch scoring (pandas, Spark), the web service, the stream, and the
service's own environment and container."""
