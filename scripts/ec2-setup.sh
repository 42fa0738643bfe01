#!/usr/bin/env bash
# Prepare a fresh Ubuntu machine (e.g. an EC2 instance) for the workbook:
# system packages, the repository, then `make setup mage-setup`.
#
#   from a checkout:  bash scripts/ec2-setup.sh
#   anywhere else:    REPO_URL=https://github.com/<owner>/<repo>.git bash ec2-setup.sh
#                     (clones into REPO_DIR, default ~/mlops-workbook)
set -euo pipefail

sudo apt-get update
sudo apt-get install -y python3 python3-venv python3-pip make git

# Docker for chapter 07's image, as Ubuntu packages it: the engine, BuildKit (buildx, which the
# Dockerfile's build secret needs), Compose v2 (`docker compose`), and this user in the docker
# group, so docker runs without sudo from the next login on.
sudo apt-get install -y docker.io docker-buildx docker-compose-v2
sudo usermod -aG docker "$USER"

# The course needs Python 3.11+; Ubuntu 22.04's python3 is 3.10, so install 3.11 beside it.
python=python3
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  sudo apt-get install -y python3.11 python3.11-venv
  python=python3.11
fi

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if repo_dir=$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null); then
  echo "Using the checkout in $repo_dir"
else
  : "${REPO_URL:?not inside a checkout of the workbook: set REPO_URL to the repository to clone}"
  repo_dir=${REPO_DIR:-$HOME/mlops-workbook}
  if [ ! -d "$repo_dir/.git" ]; then
    git clone "$REPO_URL" "$repo_dir"
  fi
fi

cd "$repo_dir"
make setup mage-setup PYTHON="$python"

cat <<MSG

Ready. In $repo_dir:
  make course PYTHON=$python   # run every chapter
  make test PYTHON=$python     # the tests CI runs
  make lab PYTHON=$python      # JupyterLab on 127.0.0.1:8888
Log out and back in once for docker to run without sudo (the docker group).
From your laptop, reach JupyterLab through an SSH tunnel:
  ssh -L 8888:localhost:8888 ubuntu@<instance-public-dns>
MSG
