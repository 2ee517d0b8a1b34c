"Stateful RNNs, truncated BPTT and the scratch RNN layer on the installed package."
import pytest, torch, torch.nn.functional as F
from torch import nn
from fastai.learner import Learner
from fastai.metrics import accuracy
from fastai.torch_core import set_seed
from fastai.callback.progress import ProgressCallback   # so that `no_bar` exists whatever was imported before
from humannums.data import human_numbers, lm_dataloaders, lm_loss, baseline
from humannums.callbacks import lm_learner
from humannums.linear import LoopedRNNLM
from humannums.rnn import *
from humannums.lstm import LSTMLM
from humannums.regularization import RegularizedLSTMLM, AWDLSTMLM

STATEFUL = [lambda: StatefulRNNLM(30, 8), lambda: SequenceRNNLM(30, 8),
            lambda: MultiLayerRNNLM(30, 8, 2), lambda: MultiLayerRNNLM(30, 8, 2, scratch=True)]
IDS = ['StatefulRNNLM', 'SequenceRNNLM', 'MultiLayerRNNLM', 'MultiLayerRNNLM-scratch']
ALL_STATEFUL = STATEFUL + [lambda: LSTMLM(30, 8), lambda: LSTMLM(30, 8, scratch=False),
                           lambda: RegularizedLSTMLM(30, 8), lambda: AWDLSTMLM(30, 8)]
ALL_IDS = IDS + ['LSTMLM', 'LSTMLM-nn.LSTM', 'RegularizedLSTMLM', 'AWDLSTMLM']

def step(model, x):
    "Run `model` on `x`: its logits and the state it keeps (`h` of the RNN LMs, `h` of the LSTM LMs' `(h, c)`)"
    out = model(x)
    return (out[0] if isinstance(out, tuple) else out), (model.h if hasattr(model, 'h') else model.state[0])

@pytest.mark.parametrize('n_layers', [1, 2])
@pytest.mark.parametrize('nonlinearity', ['tanh', 'relu'])
@pytest.mark.parametrize('batch_first', [True, False])
def test_scratch_rnn_matches_torch(n_layers, nonlinearity, batch_first):
    torch.manual_seed(0)
    ref = nn.RNN(5, 7, n_layers, nonlinearity=nonlinearity, batch_first=batch_first)
    ours = RNN.from_torch(ref)
    x = torch.randn(3, 6, 5) if batch_first else torch.randn(6, 3, 5)   # bs 3, sl 6
    h0 = torch.randn(n_layers, 3, 7)
    for h in (None, h0):
        (out, hn), (out_ref, hn_ref) = ours(x, h), ref(x, h)
        torch.testing.assert_close(out, out_ref, rtol=0, atol=1e-5)
        torch.testing.assert_close(hn, hn_ref, rtol=0, atol=1e-5)
    ref(x)[0].sum().backward(); ours(x)[0].sum().backward()
    for p, q in zip(ref.parameters(), ours.parameters()): torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-5)

def test_scratch_rnn_has_torch_parameters():
    torch.manual_seed(0); a = nn.RNN(4, 6, 2)
    torch.manual_seed(0); b = RNN(4, 6, 2)
    assert [n for n, _ in a.named_parameters()] == [n for n, _ in b.named_parameters()]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    b.load_state_dict(a.state_dict())                                    # state dicts interchange
    with pytest.raises(ValueError, match="'tanh' or 'relu'"): RNN(4, 6, nonlinearity='gelu')
    with pytest.raises(ValueError, match='n_in=4'): b(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match=r'\(2, 2, 6\)'): b(torch.randn(2, 3, 4), torch.zeros(1, 2, 6))

def test_init_state():
    x = torch.zeros(4, 3, dtype=torch.long)
    h = torch.randn(4, 8)
    assert init_state(x, (4, 8), h) is h
    assert torch.equal(init_state(x, (2, 8), h), torch.zeros(2, 8))
    assert torch.equal(init_state(x, (4, 8), None), torch.zeros(4, 8))
    z = init_state(x, (4, 8), torch.zeros(4, 8, device='meta'))          # state on another device: a new one on x's
    assert z.device == x.device

@pytest.mark.parametrize('make', STATEFUL, ids=IDS)
def test_state_follows_batch_size(make):
    model = make()
    assert model.h is None
    for bs in (4, 4, 3, 1):                                               # full, partial, predict-time batches
        out = model(torch.randint(0, 30, (bs, 5)))
        assert out.shape[0] == bs and model.h.shape[-2] == bs and model.h.grad_fn is None
    model.reset()
    assert model.h is None
    model(torch.randint(0, 30, (2, 5)))
    assert model.h.shape[-2:] == (2, 8)

@pytest.mark.parametrize('make', STATEFUL, ids=IDS)
def test_two_training_steps_keep_state_and_backprop(make):
    torch.manual_seed(0)
    model = make()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    states = []
    for _ in range(2):
        out = model(torch.randint(0, 30, (4, 6)))
        loss = lm_loss(out, torch.randint(0, 30, out.shape[:-1]))
        loss.backward(); opt.step(); opt.zero_grad()                     # the second backward needs the detach
        states.append(model.h)
    assert not torch.equal(states[0], states[1]) and states[1].abs().sum() > 0

def test_state_carries_values_across_batches():
    torch.manual_seed(0)
    m, loop = SequenceRNNLM(30, 8), LoopedRNNLM(30, 8)
    loop.load_state_dict(m.state_dict())
    x1, x2 = torch.randint(0, 30, (4, 3)), torch.randint(0, 30, (4, 3))
    m(x1)
    torch.testing.assert_close(m(x2)[:, -1], loop(torch.cat([x1, x2], 1)), rtol=0, atol=1e-5)
    torch.manual_seed(0); a = MultiLayerRNNLM(30, 8, 2)
    torch.manual_seed(0); b = MultiLayerRNNLM(30, 8, 2, scratch=True)
    xs = torch.randint(0, 30, (4, 10))
    a(xs[:, :5]); b(xs[:, :5])
    torch.testing.assert_close(b(xs[:, 5:]), a(xs[:, 5:]), rtol=0, atol=1e-5)
    a.reset(); a(xs)                                                      # one long sequence ends in the same state
    torch.testing.assert_close(b.h, a.h, rtol=0, atol=1e-5)

@pytest.mark.parametrize('make', ALL_STATEFUL, ids=ALL_IDS)
def test_model_moved_to_another_device_follows_input(make):
    "PyTorch's `meta` device stands in for a GPU where there is none: the kept CPU state must not be reused there"
    model = make()
    model(torch.randint(0, 30, (4, 5)))                                   # a CPU state of batch size 4
    model.to('meta')
    out, state = step(model, torch.randint(0, 30, (4, 5)).to('meta'))     # same batch size, other device
    assert out.device.type == 'meta' and state.device.type == 'meta' and out.shape[0] == 4

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
@pytest.mark.parametrize('make', ALL_STATEFUL, ids=ALL_IDS)
def test_model_moved_to_gpu_follows_input(make):
    model = make()
    model(torch.randint(0, 30, (4, 5)))                                   # a CPU state
    model.cuda()
    out, state = step(model, torch.randint(0, 30, (4, 5), device='cuda'))
    assert out.is_cuda and state.is_cuda
    model.cpu(); out, state = step(model, torch.randint(0, 30, (1, 5)))
    assert not out.is_cuda and not state.is_cuda

@pytest.fixture(scope='module')
def small_dls():
    nums, vocab = human_numbers()
    return lm_dataloaders(nums[:8000], vocab, sl=8, every_token=True, bs=16, device='cpu')

@pytest.mark.parametrize('make', STATEFUL[1:], ids=IDS[1:])
def test_plain_learner_one_epoch(small_dls, make):
    set_seed(0)
    learn = Learner(small_dls, make(), loss_func=lm_loss, metrics=accuracy)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    assert learn.recorder.values[-1][2] > baseline(small_dls.valid)[1] + 0.1

def test_lm_learner_stateful_one_epoch():
    nums, vocab = human_numbers()
    dls = lm_dataloaders(nums[:12000], vocab, sl=3, bs=16, grouped=True, device='cpu')
    set_seed(0)
    learn = lm_learner(dls, StatefulRNNLM(30, 16))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    assert learn.recorder.values[-1][2] > baseline(dls.valid)[1] + 0.1 and learn.model.h is None   # reset after fit
