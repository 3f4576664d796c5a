"""./lab start's JupyterLab: loopback only, token required, the labs are there."""
import json
import subprocess
import urllib.error
import urllib.request

import pytest


def test_listens_on_loopback_only(jupyter):
    base, _ = jupyter
    port = int(base.rsplit(":", 1)[1])
    out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True).stdout
    local = {line.split()[3].rsplit(":", 1)[0] for line in out.splitlines()}
    assert local == {"127.0.0.1"}, out


def test_requires_the_token(jupyter):
    base, token = jupyter
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{base}/api/contents/labs")
    assert e.value.code == 403
    listing = json.load(urllib.request.urlopen(f"{base}/api/contents/labs?token={token}"))
    names = {c["name"] for c in listing["content"]}
    assert "00-welcome.ipynb" in names and "01-hello-xdp.ipynb" in names


def test_serves_jupyterlab_with_bokeh_widget_extension(jupyter):
    base, token = jupyter
    page = urllib.request.urlopen(f"{base}/lab?token={token}").read().decode()
    assert "JupyterLab" in page
    ext = urllib.request.urlopen(f"{base}/lab/api/extensions?token={token}").read().decode()
    assert "jupyter_bokeh" in ext or "@bokeh/jupyter_bokeh" in ext
