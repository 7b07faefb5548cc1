"""The bundled demo's files, shipped as the package ``famicli.assets`` (pyproject.toml maps it to this
folder); :mod:`famicli.data.synthtrack.demo` finds them here, in a checkout and in an installed wheel alike."""
