#!/usr/bin/env python
"""Run a notebook top to bottom, as Jupyter would, and store the outputs of its `#| slow` cells (all, or those named).

    python tools/refresh_slow_outputs.py nbs/05_regularization.ipynb [CELL_ID,CELL_ID...]

`nbdev_test` skips `#| slow` cells; their committed outputs are the record of a real run (DEVELOPERS.md). Other cells keep
no outputs. Run `nbdev_clean` afterwards, and update the prose that quotes the numbers.
"""
import os, sys, time
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell

def main(path:str, ids:str|None=None):
    path, only = os.path.abspath(path), set(ids.split(',')) if ids else None
    nb, cwd = read_nb(path), os.getcwd()
    os.chdir(os.path.dirname(path))                    # as nbdev_test runs it
    sh, t0 = CaptureShell(), time.time()
    try:
        for c in nb.cells:
            if c.cell_type != 'code': continue
            t = time.time()
            sh.cell(c)
            if any(o.get('output_type') == 'error' for o in c.get('outputs', [])):
                sys.exit(f"cell {c.id} failed:\n" + '\n'.join(''.join(o.get('traceback', [])) for o in c.outputs))
            print(f"{c.id} {time.time()-t:6.1f}s {'slow' if '#| slow' in c.source else ''}", flush=True)
    finally: os.chdir(cwd)
    fresh, nb = {c.id: c for c in nb.cells}, read_nb(path)   # re-read: edits made meanwhile to other cells are kept
    for c in nb.cells:
        if c.cell_type == 'code' and '#| slow' in c.source and (only is None or c.id in only): c.outputs = fresh[c.id].outputs
    write_nb(nb, path)
    print(f"{path}: slow-cell outputs refreshed in {time.time()-t0:.0f}s")

if __name__ == '__main__': main(*sys.argv[1:])
