"What a researcher sees in JupyterLab: the import cells raise no warning and long work shows a progress widget."
import nbformat
from nbclient import NotebookClient

CELLS = [
    "from ris_music.core import load_preset\nfrom ris_music.data import generate_dataset\n"
    "from ris_music.train import Trainer",
    "generate_dataset(load_preset('tiny'), 'd', 64, 32, 0, shard_size=32, workers=1, seed=0, progress=False)\n"
    "Trainer('d', 'o', params=dict(batch_size=32, D_MODEL=32, NUM_HEADS=2, n_layers=1)).fit(1)",
]


def test_progress_widget_and_no_warning(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata['kernelspec'] = dict(name='python3', display_name='python3', language='python')
    NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(tmp_path)}},
                   store_widget_state=True).execute()
    outs = [o for c in nb.cells for o in c.outputs]
    text = ''.join(o.get('text', '') for o in outs if o.output_type == 'stream')
    assert 'TqdmWarning' not in text and 'IProgress not found' not in text, text
    assert not [o for o in nb.cells[0].outputs if o.output_type == 'stream' and o.name == 'stderr'], nb.cells[0].outputs
    widgets = [o for o in outs if 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    assert widgets, 'the training epoch shows no progress widget'
    nbformat.write(nb, tmp_path / 'executed.ipynb')
