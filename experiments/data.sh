# Sourced by the experiments' shell drivers (run from the repository root): $data, the LaMP-format data folder,
# is PERSONALIGN_DATA, else experiments.DATA_DIR (the one place that names the default).
data=${PERSONALIGN_DATA:-$(${PYTHON:-.venv/bin/python} -c "import experiments; print(experiments.DATA_DIR)")}
