#!/bin/sh
# Install Pilot: `npm i -g` the package (from a checkout, a .tgz or the npm
# registry), then run the daemon as a service (`pilotctl service install`,
# a systemd user unit by default, a launchd agent on macOS).
#
#   sh install.sh [SOURCE] [--prefix DIR] [--system] [--no-service]
#                 [--registry HOST:PORT --email E [--hostname H]]
#
# SOURCE: a checkout directory, a pilot-overlay-*.tgz or a registry spec
# (default: this script's checkout if it is one, else "pilot-overlay").
# --registry/--email/--hostname write the daemon config (pilotctl init).
set -eu

die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

here=$(cd "$(dirname "$0")" && pwd)
source=''
prefix=''
scope=''
service=yes
registry=''
email=''
hostname=''
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die '--prefix needs a directory'; prefix=$2; shift 2 ;;
    --system) scope=--system; shift ;;
    --no-service) service=no; shift ;;
    --registry) [ $# -ge 2 ] || die '--registry needs HOST:PORT'; registry=$2; shift 2 ;;
    --email) [ $# -ge 2 ] || die '--email needs an address'; email=$2; shift 2 ;;
    --hostname) [ $# -ge 2 ] || die '--hostname needs a name'; hostname=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$source" ] || die "more than one SOURCE: $source, $1"; source=$1; shift ;;
  esac
done

command -v node >/dev/null 2>&1 || die 'node is not installed (Pilot runs on the machine'"'"'s Node, >= 22.12)'
command -v npm >/dev/null 2>&1 || die 'npm is not installed'
# The package brings no Node of its own: it runs on this one (package.json engines).
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 12) ? 0 : 1)' ||
  die "Node $(node --version) is too old: Pilot needs Node >= 22.12 (Node 20 is past end of life)"
printf 'node %s, npm %s\n' "$(node --version)" "$(npm --version)"

if [ -z "$source" ]; then
  if [ -f "$here/package.json" ] && grep -q '"name": "pilot-overlay"' "$here/package.json"; then source=$here; else source=pilot-overlay; fi
fi

tmp=''
cleanup() { [ -z "$tmp" ] || rm -rf "$tmp"; }
trap cleanup EXIT INT TERM

# A directory would be installed as a symlink to the checkout: pack it first,
# so the global install is a real copy with its own dependencies.
if [ -d "$source" ]; then
  tmp=$(mktemp -d)
  printf 'packing %s\n' "$source"
  (cd "$source" && npm pack --silent --pack-destination "$tmp" >/dev/null)
  set -- "$tmp"/*.tgz
  [ -f "$1" ] || die "npm pack produced no tarball in $tmp"
  source=$1
fi

printf 'installing %s\n' "$source"
if [ -n "$prefix" ]; then
  npm install -g --prefix "$prefix" "$source"
  bindir=$prefix/bin
else
  npm install -g "$source"
  bindir=$(npm prefix -g)/bin
fi
pilotctl=$bindir/pilotctl
[ -x "$pilotctl" ] || die "pilotctl was not installed in $bindir"
"$pilotctl" version

if [ -n "$email" ]; then
  set -- init --email "$email"
  [ -z "$registry" ] || set -- "$@" --registry "$registry"
  [ -z "$hostname" ] || set -- "$@" --hostname "$hostname"
  "$pilotctl" "$@"
fi

if [ "$service" = yes ]; then
  if [ -n "$scope" ]; then "$pilotctl" service install "$scope"; else "$pilotctl" service install; fi
fi

cat <<NEXT

Pilot is installed: $pilotctl, $bindir/pilot-rendezvous
Next steps:
  $bindir is on your PATH? (if not: export PATH="$bindir:\$PATH")
  pilotctl init --registry HOST:PORT --email you@example.com   (unless done above)
  pilotctl daemon start            (or let the service run it: pilotctl service status)
  pilotctl info
  To run pilot-rendezvous here, install its store beside it (it prints the exact npm command if missing).
NEXT
