"Dataset facts and data-layout checks on the installed package."
import pytest, torch
from humannums.data import *

def test_dataset_facts(tmp_path):
    path = human_numbers_path(tmp_path)
    assert is_human_numbers(path)
    tokens = human_numbers_tokens(path)
    assert len(read_lines(path)) == 9_998 and len(tokens) == 63_095
    vocab = Vocab(tokens)
    assert len(vocab) == 30 and vocab.itos[:4] == ['one', '.', 'two', 'three'] and vocab.itos[-2:] == ['hundred', 'thousand']
    x, y = lm_samples(vocab.numericalize(tokens), 3)
    assert len(x) == 21_031 and split_point(len(x)) == 16_824

def test_layouts_and_baseline():
    dls = human_numbers_dls(sl=3, grouped=False, device='cpu')
    assert baseline(dls.valid) == ('thousand', pytest.approx(0.15165200855716662, abs=1e-12))
    dls16 = human_numbers_dls(sl=16, every_token=True, device='cpu')
    assert (len(dls16.train), len(dls16.valid)) == (49, 12)
    (x0, _), (x1, _) = list(dls16.train)[:2]
    nums, _ = human_numbers()
    m = len(dls16.train)
    assert torch.equal(x1[3], nums[(m*3+1)*16:(m*3+2)*16])   # row 3 of batch 1 continues stream 3

def test_existing_file_is_never_overwritten(tmp_path):
    (tmp_path/'human_numbers').mkdir()
    (tmp_path/'human_numbers'/'valid.txt').write_text('mine')
    with pytest.raises(FileExistsError, match='move it away'): human_numbers_path(tmp_path)
    assert (tmp_path/'human_numbers'/'valid.txt').read_text() == 'mine'

def test_unknown_token_is_named():
    _, vocab = human_numbers()
    with pytest.raises(KeyError, match="'eleventy'"): vocab.numericalize(['one', 'eleventy'])
