"The training-speed pieces of humannums.callbacks compute what fastai computes: optimizer, schedule, metrics, dispatch"
import io, contextlib
import pytest, torch
from torch import nn
from fastai.learner import Learner, Recorder
from fastai.optimizer import Adam
from fastai.metrics import accuracy
from fastai.callback.core import Callback
from fastai.callback.schedule import combined_cos
from fastai.callback.progress import ProgressCallback
from humannums.data import human_numbers, lm_dataloaders, lm_loss
from humannums.callbacks import (FusedAdam, LMLearner, TokenAccuracy, CPUThreads, lm_learner, lm_callbacks,
                                 one_cycle_sched)

@pytest.fixture(scope='module')
def dls():
    nums, vocab = human_numbers()
    return lm_dataloaders(nums[:3000], vocab, sl=3, bs=32, grouped=False, device='cpu')

def model():
    return nn.Sequential(nn.Embedding(30, 16), nn.Flatten(), nn.Linear(48, 16), nn.ReLU(), nn.Linear(16, 30))

@pytest.mark.parametrize('decouple_wd', [True, False])
def test_fused_adam_matches_fastai_adam(decouple_wd):
    torch.manual_seed(0)
    pa = [torch.randn(6, 3, requires_grad=True), torch.randn(3, requires_grad=True)]
    pb = [p.detach().clone().requires_grad_() for p in pa]
    oa, ob = Adam(pa, lr=1e-2, wd=0.1, decouple_wd=decouple_wd), FusedAdam(pb, lr=1e-2, wd=0.1, decouple_wd=decouple_wd)
    oa.state[pa[1]]['do_wd'] = ob.state[pb[1]]['do_wd'] = False           # fastai exempts biases from weight decay
    for i in range(15):
        grads = [torch.randn_like(p) for p in pa]
        for o, ps in ((oa, pa), (ob, pb)):
            o.set_hyper('mom', 0.95 - i/100); o.set_hyper('lr', 1e-2*(1 + i/5))
            for p, g in zip(ps, grads): p.grad = g.clone()
            o.step(); o.zero_grad()
    for a, b in zip(pa, pb): torch.testing.assert_close(a, b, atol=1e-5, rtol=0)

def test_one_cycle_sched_matches_fastai():
    ours, theirs = one_cycle_sched(0.25, 4e-5, 1e-3, 1e-8), combined_cos(0.25, 4e-5, 1e-3, 1e-8)
    for pos in [0, 0.1, 0.25, 0.6, 0.99]: assert ours(pos) == pytest.approx(theirs(pos), rel=1e-5)

def test_token_accuracy_matches_fastai_accuracy():
    class L_:
        def __init__(self, p, t): self.pred, self.yb = p, (t,)
    torch.manual_seed(0)
    m, num, den = TokenAccuracy(), 0., 0
    m.reset()
    for bs in (5, 5, 2):
        p, t = torch.randn(bs, 4, 6), torch.randint(0, 6, (bs, 4))
        m.accumulate(L_(p, t)); num += accuracy(p, t).item()*bs; den += bs
    assert m.name == 'accuracy' and m.value == pytest.approx(num/den)

def test_lm_learner_trains_like_a_stock_learner(dls):
    res = []
    for make in (lambda m: Learner(dls, m, loss_func=lm_loss, metrics=accuracy, cbs=lm_callbacks() + [CPUThreads(1)]),
                 lambda m: lm_learner(dls, m)):
        torch.manual_seed(0)
        learn = make(model())
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(2, 1e-2)
        res.append(learn)
    stock, ours = res
    assert isinstance(ours, LMLearner) and isinstance(ours.opt, FusedAdam)
    assert isinstance(ours.recorder, Recorder) and isinstance(ours.progress, ProgressCallback)
    assert ours.recorder.metric_names == stock.recorder.metric_names
    for a, b in zip(ours.recorder.values, stock.recorder.values): assert list(a) == pytest.approx(list(b), abs=1e-4)
    assert ours.recorder.hps['lr'] == pytest.approx(stock.recorder.hps['lr'], rel=1e-5)

def test_callbacks_run_in_order_with_fastai_rules(dls):
    def trace(cls):
        log = []
        class Tag(Callback):
            def __init__(self, tag, order, **kw): self.tag, self.order = tag, order; self.__dict__.update(kw)
            def after_loss(self): log.append((self.tag, self.learn.training))
        learn = cls(dls, model(), loss_func=lm_loss, cbs=[Tag('b', 2), Tag('a', 1), Tag('t', 0, run_valid=False),
                                                           Tag('v', 0, run_train=False), Tag('off', 0, run=False)])
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        return log
    assert trace(LMLearner) == trace(Learner)

def test_callback_errors_name_the_callback(dls):
    class Broken(Callback):
        def after_pred(self): raise ValueError('boom')
    learn = LMLearner(dls, model(), loss_func=lm_loss, cbs=Broken())
    with pytest.raises(ValueError, match='`Broken` when calling event `after_pred`'), learn.no_bar(), learn.no_logging():
        learn.fit(1)

def test_cpu_threads_are_restored(dls):
    before = torch.get_num_threads()
    seen = []
    class See(Callback):
        def after_batch(self): seen.append(torch.get_num_threads())
    learn = lm_learner(dls, model(), cbs=See(), n_threads=1)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert set(seen) == {1} and torch.get_num_threads() == before
    with pytest.raises(ValueError, match='>= 1'): CPUThreads(0)
