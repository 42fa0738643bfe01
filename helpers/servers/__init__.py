"""The servers the course starts for real, each a process of its own on 127.0.0.1, and the browser
that looks at them."""
