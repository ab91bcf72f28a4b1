# Browser tests in CI: source this from .ci/run once the virtual environment exists
# (after `make .venv/bin/tplib`, before `make test`):
#
#     . tests/browser_ci.sh
#
# It installs Debian's Chromium when /usr/bin/chromium is missing (about 70 s), the
# test extra (JupyterLab, ipywidgets 8, nbconvert, Playwright) into ${VENV:-.venv}
# when Playwright is missing there, and exports TPLIB_REQUIRE_BROWSER=1: a missing browser
# then fails the `browser` and `compat` tests instead of skipping them.
# (`playwright install` cannot download browsers here; the harness drives /usr/bin/chromium.)

if [ ! -x /usr/bin/chromium ] && [ -z "${TPLIB_CHROMIUM:-}" ]; then
  echo "browser_ci: installing chromium" >&2
  _browser_ci_start=$(date +%s)
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq chromium >/dev/null
  echo "browser_ci: chromium installed in $(( $(date +%s) - _browser_ci_start )) s" >&2
fi

if ! "${VENV:-.venv}/bin/python" -c "import playwright.sync_api, jupyterlab, nbconvert" 2>/dev/null; then
  echo "browser_ci: installing the test extra into ${VENV:-.venv}" >&2
  "${VENV:-.venv}/bin/python" -m pip install --quiet -e ".[test]"
fi

export TPLIB_REQUIRE_BROWSER=1
