#!/usr/bin/env bash
# The GPU check of docs/measured.md "On a GPU", as run on a lent H200 (Python 3.12 and torch in its
# image, no network): .gpu/ holds the wheels of what the image lacks (pip download for cp312:
# automl's dependencies but torch and plotly, pytest) and ray-pruned.tgz, Ray 2.60.0's cp312 wheel
# unpacked without ray/jars, ray/rllib and ray/llm, to fit the 64 MiB a run can carry.
# Run from the repository root: bash benchmarks/gpu_check.sh (logs under $OUT);
# bash benchmarks/gpu_check.sh packing runs benchmarks/gpu_packing.py instead (under 8 minutes).
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .gpu/*.whl || exit 1
tar -xzf .gpu/ray-pruned.tgz -C /tmp/site || exit 1
[ -e automl/search_spaces ] || cp -r search_spaces automl/search_spaces  # what the editable install maps
export PYTHONPATH=/tmp/site:$PWD YOLO_OFFLINE=1 PYTHONUNBUFFERED=1
mkdir -p /tmp/site/polars && echo 'def read_csv(*a, **k): raise RuntimeError("no polars on this machine")' > /tmp/site/polars/__init__.py
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; nproc
python3 -c "import sys, torch, ultralytics, optuna, ray; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'ultralytics', ultralytics.__version__, 'optuna', optuna.__version__, 'ray', ray.__version__)"
if [ "$1" = packing ]; then
  timeout 480 python3 benchmarks/gpu_packing.py --out "$OUT" 2>&1 | tee "$OUT/gpu_packing.log" | grep -v "^ *[0-9]*/[0-9]* " | tail -60
  exit
fi
start=$(date +%s)
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -rs 2>&1 | tee $OUT/test_gpu.log | tail -15
echo "test_gpu wall: $(( $(date +%s) - start )) s"
mkdir -p /tmp/w && cd /tmp/w
start=$(date +%s)
timeout 200 python3 -m automl search --space lr_momentum --concurrency 4 --gpus-per-trial 0.25 2>&1 | tee $OUT/search.log | grep -v "^ *[0-9]*/[0-9]* " | tail -30
echo "search wall: $(( $(date +%s) - start )) s"
python3 - <<'PY'
import optuna, glob
for db in glob.glob("/tmp/w/studies/*.db"):
    for s in optuna.get_all_study_summaries(f"sqlite:///{db}"):
        st = optuna.load_study(study_name=s.study_name, storage=f"sqlite:///{db}")
        for t in st.trials:
            print(t.number, t.state.name, t.values, t.user_attrs.get("device"), t.datetime_start, t.datetime_complete)
PY
