"The book's first models (LMModel1, LMModel2) on the installed package."
import pytest, torch
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from fastai.callback.progress import ProgressCallback   # so that `no_bar` exists whatever was imported before
from humannums.data import human_numbers, lm_dataloaders, lm_loss
from humannums.callbacks import lm_learner
from humannums.linear import *

def test_linear_is_the_books_arithmetic():
    torch.manual_seed(0)
    m = LinearLM(5, 3)
    x = torch.tensor([[0, 3, 4], [1, 1, 2]])
    E, W, b = m.i_h.weight, m.h_h.weight, m.h_h.bias
    h = torch.relu(E[x[:, 0]] @ W.T + b)
    for i in (1, 2): h = torch.relu((h + E[x[:, i]]) @ W.T + b)
    torch.testing.assert_close(m(x), h @ m.h_o.weight.T + m.h_o.bias)
    assert LMModel1 is LinearLM and LMModel2 is LoopedRNNLM

def test_looped_equals_linear_on_three_tokens():
    torch.manual_seed(1)
    lin, loop = LinearLM(30, 16), LoopedRNNLM(30, 16)
    loop.load_state_dict(lin.state_dict())
    x = torch.randint(0, 30, (8, 3))
    torch.testing.assert_close(loop(x), lin(x), rtol=0, atol=1e-6)
    assert loop(torch.randint(0, 30, (1, 7))).shape == (1, 30)         # any length, batch of one

def test_bad_input_is_named():
    m = LinearLM(30, 8)
    with pytest.raises(ValueError, match='exactly 3 tokens'): m(torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match='vocab of 30'): m(torch.tensor([[0, 1, 30]]))
    with pytest.raises(TypeError, match='integer tensor'): LoopedRNNLM(30, 8)(torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r'x\[None\]'): LoopedRNNLM(30, 8)(torch.zeros(3, dtype=torch.long))

@pytest.fixture(scope='module')
def small_dls():
    nums, vocab = human_numbers()
    return lm_dataloaders(nums[:12000], vocab, sl=3, bs=64, grouped=False, device='cpu')

@pytest.mark.parametrize('model_cls', [LinearLM, LoopedRNNLM])
def test_plain_learner_one_epoch(small_dls, model_cls):
    set_seed(0)
    learn = Learner(small_dls, model_cls(30, 32), loss_func=lm_loss, metrics=accuracy)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    train_loss, valid_loss, acc = learn.recorder.values[-1]
    assert valid_loss < 3.0 and acc > 0.3          # log(30) = 3.4; baseline of this split 0.16 ('.')

def test_lm_learner_one_epoch(small_dls):
    set_seed(0)
    learn = lm_learner(small_dls, LoopedRNNLM(30, 32))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    assert learn.recorder.values[-1][2] > 0.3
