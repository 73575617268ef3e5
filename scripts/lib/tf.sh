# shellcheck shell=bash
# Terraform helpers shared by the test scripts. Source it; it defines functions and exports a few
# TF_* variables, and runs nothing else.
#
#   TICKWATCH_ROOT       the repository root
#   TF_CLI_CONFIG_FILE   set to infra/terraform/ci/mirror.tfrc when /opt/tf-plugins (a local mirror
#                        of the providers, present on CI machines without registry access) exists;
#                        left alone elsewhere, so `terraform init` uses the registry as usual.
#   tf DIR ARGS...       terraform -chdir=DIR ARGS...
#   tf_init DIR [ARGS]   terraform init, non-interactive
#   tf_stage DEST        copies infra/terraform to DEST without local state, .terraform dirs or lock
#                        files, so init/test/apply never write into the working tree

TICKWATCH_ROOT=${TICKWATCH_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
export TICKWATCH_ROOT

TF_PLUGIN_MIRROR_DIR=/opt/tf-plugins
if [[ -d $TF_PLUGIN_MIRROR_DIR ]]; then
  export TF_CLI_CONFIG_FILE="$TICKWATCH_ROOT/infra/terraform/ci/mirror.tfrc"
fi

export TF_IN_AUTOMATION=1 TF_INPUT=0

tf_require() {
  if ! command -v terraform >/dev/null 2>&1; then
    echo "terraform not found on PATH; install Terraform >= 1.11." >&2
    return 1
  fi
}

tf() {
  local dir=$1; shift
  terraform -chdir="$dir" "$@"
}

tf_init() {
  local dir=$1; shift
  tf "$dir" init -input=false -no-color "$@"
}

tf_stage() {
  local dest=$1
  mkdir -p "$dest"
  tar -C "$TICKWATCH_ROOT/infra" \
    --exclude='.terraform' --exclude='.terraform.lock.hcl' \
    --exclude='*.tfstate' --exclude='*.tfstate.*' --exclude='*.tfplan' \
    --exclude='backend.tf' --exclude='*_override.tf' --exclude='*_override.tf.json' \
    -cf - terraform | tar -C "$dest" -xf -
}
