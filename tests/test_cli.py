"The installed `humannums` command: every action, the error paths, a quick run of every recipe."
import contextlib, io, os, shutil, subprocess, sys
from pathlib import Path
import pytest, torch
from humannums.cli import main
from humannums.train import RECIPES

torch.set_num_threads(1)            # tiny models: one thread is fastest on a shared CPU
EXE = shutil.which('humannums') or str(Path(sys.executable).parent/'humannums')
ENV = dict(os.environ, MPLBACKEND='Agg', OMP_NUM_THREADS='1')

def sh(*args, timeout=300):
    "Run the installed console script"
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=ENV)

def run(*args):
    "Run `main` in this process"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main(list(map(str, args)))
    return code, out.getvalue(), err.getvalue()

def test_help_reads_well():
    code, out, err = run('--help')
    assert code == 0 and all(a in out for a in ['train', 'evaluate', 'generate', 'count', 'recipes'])
    for action in ['train', 'evaluate', 'generate', 'count', 'recipes']:
        code, out, err = run(action, '--help')
        assert code == 0 and out.startswith(f'usage: humannums {action}')
    code, out, err = run('train', '--help')
    assert all(n in out for n in RECIPES) and all(f in out for f in ['--epochs', '--lr', '--bs', '--seed', '--wd', '--sl',
                                                                     '--n-hid', '--text', '--save', '--force', '--quick', '--all'])

def test_console_script_error():
    r = sh('train', 'lstm9')
    assert r.returncode == 2 and r.stdout == '' and len(r.stderr.strip().splitlines()) == 1
    assert 'unknown recipe' in r.stderr and all(n in r.stderr for n in RECIPES) and 'Traceback' not in r.stderr

def test_all_quick_every_recipe_and_results(tmp_path):
    r = sh('train', '--all', '--quick', '--no-progress', '--out', tmp_path/'res')
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in (tmp_path/'res').iterdir())
    assert files == ['accuracy.png', 'curves.csv', 'curves.png', 'results.csv', 'results.md']
    lines = (tmp_path/'res'/'results.csv').read_text().splitlines()
    assert lines[0].startswith('recipe,book_model,accuracy,book_accuracy,loss,perplexity,whole_number_accuracy')
    assert [l.split(',')[0] for l in lines[1:]] == list(RECIPES)
    assert (tmp_path/'res'/'accuracy.png').read_bytes()[:4] == b'\x89PNG'

@pytest.mark.parametrize('args,msg', [
    (['train', 'linear', '--epochs', '-1'], 'must be a whole number >= 1, got -1'),
    (['train', 'linear', '--lr', '0'], 'must be a finite number > 0'),
    (['train', 'linear', '--lr', 'fast'], "must be a finite number > 0, got 'fast'"),
    (['train', 'linear', '--bs', '0'], 'must be a whole number >= 1'),
    (['train', 'lstm', '--bs', '100000'], 'lower bs to 789 or less'),          # answered at once (it once searched for minutes)
    (['train', 'linear', '--wd', '-0.1'], 'must be a finite number >= 0'),
    (['train', 'linear', '--sl', '8'], 'reads exactly 3 tokens'),
    (['train'], 'give a recipe NAME'),
    (['train', 'linear', '--all'], 'not both'),
    (['train', 'linear', '--force'], 'only makes sense with --save'),
    (['train', 'linear', '--save', ''], 'needs a file path'),
    (['generate', 'm.pth', 'one', '-n', '-3'], 'must be a whole number >= 0'),
    (['generate', 'm.pth', 'one', '--temperature', '-1'], 'must be a finite number >= 0'),
    (['count', 'm.pth', '--start', '0'], 'must be a whole number from 1 to 9999'),
    (['fly'], 'invalid choice'),
])
def test_bad_values_exit_2(args, msg):
    code, out, err = run(*args)
    assert code == 2 and msg in err and len(err.strip().splitlines()) == 1 and 'Traceback' not in err

def test_file_errors_exit_1(tmp_path):
    for action in (['evaluate'], ['generate', '_', 'one'], ['count', '_']):
        code, out, err = run(action[0], tmp_path/'nope.pth', *action[2:])
        assert code == 1 and 'does not exist' in err and len(err.strip().splitlines()) == 1
    (tmp_path/'corrupt.pth').write_bytes(os.urandom(300))
    code, out, err = run('evaluate', tmp_path/'corrupt.pth')
    assert code == 1 and 'cannot be read' in err
    torch.save({'hello': 1}, tmp_path/'other.pth')
    code, out, err = run('count', tmp_path/'other.pth')
    assert code == 1 and 'not a humannums model file' in err
    code, out, err = run('train', 'linear', '--text', tmp_path/'missing.txt')
    assert code == 1 and 'does not exist' in err
    (tmp_path/'empty.txt').write_text('')
    code, out, err = run('train', 'linear', '--text', tmp_path/'empty.txt')
    assert code == 1 and 'is empty' in err
    (tmp_path/'latin1.txt').write_bytes('na\xefve caf\xe9'.encode('latin1'))
    code, out, err = run('train', 'linear', '--text', tmp_path/'latin1.txt')
    assert code == 1 and 'not UTF-8' in err and 'byte 0xef' in err
    (tmp_path/'short.txt').write_text('one two three ' * 30)
    code, out, err = run('train', 'linear', '--text', tmp_path/'short.txt')
    assert code == 2 and 'too few' in err and 'lower bs' in err                # the fix is a value: --bs

def test_save_load_generate_round_trip(tmp_path):
    f = tmp_path/'lin.pth'
    r = sh('train', 'linear', '--quick', '--save', f)
    assert r.returncode == 0, r.stderr
    assert 'epoch' in r.stdout and 'train_loss' in r.stdout                  # the per-epoch table
    assert 'validation loss' in r.stdout and 'accuracy' in r.stdout and f'saved to {f}' in r.stdout
    before = f.read_bytes()
    code, out, err = run('train', 'linear', '--quick', '--save', f)         # refuses to overwrite, before training
    assert code == 1 and 'add --force' in err and f.read_bytes() == before and out == ''
    code, out, err = run('train', 'linear', '--quick', '--no-progress', '--seed', 5, '--save', f, '--force')
    assert code == 0 and f.read_bytes() != before
    r = sh('generate', f, 'seven thousand nine hundred ninety eight .', '-n', 20, '--temperature', 0.8, '--seed', 1)
    assert r.returncode == 0 and len(r.stdout.split()) == 7 + 20
    code, out, err = run('generate', f, 'seven thousand nine hundred ninety eight .', '-n', 20, '--temperature', 0.8, '--seed', 1)
    assert out == r.stdout                                                     # seeded sampling repeats
    code, out, err = run('generate', f, 'one . eleventy two', '-n', 3)
    assert code == 2 and "'eleventy'" in err and '--unknown skip' in err
    code, out, err = run('generate', f, 'one . eleventy two', '-n', 3, '--unknown', 'skip')
    assert code == 0 and out.split()[:3] == ['one', '.', 'two'] and len(out.split()) == 3 + 3   # the prompt as read
    code, out, err = run('evaluate', f)
    assert code == 0 and 'accuracy' in out and 'perplexity' in out
    code, out, err = run('count', f, '--start', 8001)
    assert code == 0 and out.startswith('counted ')

def test_recipes_lists_book_names():
    code, out, err = run('recipes')
    assert code == 0 and all(n in out and RECIPES[n].book in out for n in RECIPES)

def test_help_needs_no_torch():
    "`humannums --help` and usage errors answer at once: the parser imports neither torch nor fastai"
    code = "import sys; from humannums.cli import build_parser, RECIPE_NAMES; build_parser(); assert 'torch' not in sys.modules"
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    from humannums.cli import RECIPE_NAMES
    assert list(RECIPE_NAMES) == list(RECIPES)

def test_bad_values_are_usage_errors():
    for args, msg in [(['train', 'linear', '--bs', '100000'], 'too few for one batch'),
                      (['train', 'linear', '--device', 'mps'], "device must be 'cpu', 'cuda' or 'cuda:N'"),
                      (['train', 'linear', '--lr', 'inf'], 'finite number > 0'),
                      (['count', 'm.pth', '--start', '10000'], 'from 1 to 9999'),
                      (['generate', 'm.pth', 'one', '--seed', '3'], '--temperature')]:
        code, out, err = run(*args)
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1 and out == '', (args, err)

def test_save_path_is_checked_before_training(tmp_path):
    (tmp_path/'a_file').write_text('keep me')
    for target, msg in [(tmp_path, 'is a folder'), (tmp_path/'a_file'/'m.pth', 'cannot write a model file')]:
        code, out, err = run('train', 'tuned', '--save', target, '--force')   # tuned: 30 epochs, if it trained
        assert code == 1 and msg in err and 'train_loss' not in out and 'Traceback' not in err, err
    assert (tmp_path/'a_file').read_text() == 'keep me' and sorted(p.name for p in tmp_path.iterdir()) == ['a_file']

def test_diverged_training_is_an_error_and_not_saved(tmp_path):
    r = sh('train', 'linear', '--quick', '--no-progress', '--lr', '1e6', '--save', tmp_path/'nan.pth')
    assert r.returncode == 1 and 'training diverged' in r.stderr and 'lower --lr' in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and not (tmp_path/'nan.pth').exists()

def test_text_without_whole_numbers_trains_and_saves(tmp_path):
    "A text with '.' tokens but no complete 'number' in its validation part: whole-number accuracy is n/a, the model is saved"
    words = 'a b c d e f g h'.split()
    (tmp_path/'dots.txt').write_text('. ' + ' '.join(words[(i*7) % 8] for i in range(3000)))
    code, out, err = run('train', 'sequence', '--text', tmp_path/'dots.txt', '--bs', 16, '--epochs', 1, '--no-progress',
                         '--save', tmp_path/'dots.pth')
    assert code == 0, err
    assert 'whole-number accuracy n/a' in out and (tmp_path/'dots.pth').exists()
    code, out, err = run('evaluate', tmp_path/'dots.pth')
    assert code == 0 and 'accuracy' in out, err

def test_threads_after_the_action():
    code, out, err = run('recipes', '--threads', 1)
    assert code == 0 and 'linear' in out

def test_version():
    r = sh('--version')
    assert r.returncode == 0 and r.stdout.strip().startswith('humannums 0.')

def test_all_out_is_checked_before_training(tmp_path):
    (tmp_path/'notes.md').write_text('keep me')
    r = sh('train', '--all', '--quick', '--no-progress', '--out', tmp_path/'notes.md')
    assert r.returncode == 1 and 'is a file, not a folder' in r.stderr and 'linear' not in r.stdout
    assert (tmp_path/'notes.md').read_text() == 'keep me'

def test_all_with_a_diverging_lr_is_an_error_and_keeps_earlier_results(tmp_path):
    (tmp_path/'res').mkdir(); (tmp_path/'res'/'results.md').write_text('good results')
    r = sh('train', '--all', '--quick', '--no-progress', '--lr', '1e9', '--out', tmp_path/'res')
    assert r.returncode == 1 and 'training diverged' in r.stderr and 'nothing written' in r.stderr and 'lower --lr' in r.stderr
    assert 'UserWarning' not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path/'res').iterdir()) == ['results.md'] and (tmp_path/'res'/'results.md').read_text() == 'good results'

def test_quick_honours_epochs():
    code, out, err = run('train', 'linear', '--quick', '--epochs', 2, '--no-progress')
    assert code == 0 and '2 epochs in' in out, err

def test_too_large_a_model_is_a_clear_error():
    code, out, err = run('train', 'lstm', '--n-hid', 200_000, '--no-progress')     # 640 GB of weights
    assert code == 1 and 'does not fit in memory: lower n_hid' in err and len(err.strip().splitlines()) == 1
