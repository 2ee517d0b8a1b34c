"humannums' callbacks on the installed package: AR/TAR arithmetic against hand-computed values, when they apply, state resets."
import pytest, torch
from torch import nn
from fastai.learner import Learner
from humannums.data import human_numbers, lm_dataloaders, lm_loss
from humannums.callbacks import activation_penalty, ActivationRegularizer, ResetState, lm_callbacks

torch.set_num_threads(1)

def test_activation_penalty_by_hand():
    raw = torch.tensor([[[1., 2.], [3., 5.], [4., 4.]]])            # (bs 1, sl 3, n_hid 2)
    dropped = torch.tensor([[[2., 0.], [0., 4.], [1., 1.]]])
    ar = (4 + 0 + 0 + 16 + 1 + 1) / 6                               # mean of dropped**2
    tar = ((3-1)**2 + (5-2)**2 + (4-3)**2 + (4-5)**2) / 4            # mean of squared differences along time
    assert activation_penalty(raw, dropped, alpha=2., beta=0.).item() == pytest.approx(2*ar)
    assert activation_penalty(raw, dropped, alpha=0., beta=3.).item() == pytest.approx(3*tar)
    assert activation_penalty(raw, dropped, alpha=2., beta=3.).item() == pytest.approx(2*ar + 3*tar)
    # TAR differences along time, not along the batch: swapping the two samples of a batch changes nothing
    two = torch.cat([raw, raw.flip(1)])
    assert activation_penalty(two, two, 0., 1.).item() == pytest.approx(activation_penalty(two.flip(0), two.flip(0), 0., 1.).item())
    # a single time step has no TAR; AR still applies
    assert activation_penalty(raw[:, :1], dropped[:, :1], alpha=0., beta=5.).item() == 0
    assert activation_penalty(raw[:, :1], dropped[:, :1], alpha=1., beta=5.).item() == pytest.approx(2.)

class TupleLM(nn.Module):
    "A stateful toy that returns (logits, raw, dropped), with a counter of resets"
    def __init__(self, vocab_sz=30, n_hid=8):
        super().__init__()
        self.emb, self.out, self.resets = nn.Embedding(vocab_sz, n_hid), nn.Linear(n_hid, vocab_sz), 0
    def forward(self, x):
        raw = self.emb(x)
        return self.out(raw), raw, raw * 2
    def reset(self): self.resets += 1

@pytest.fixture(scope='module')
def dls():
    nums, vocab = human_numbers()
    return lm_dataloaders(nums[:2000], vocab, sl=4, every_token=True, bs=8, device='cpu')

def test_penalty_only_in_training_and_reported_loss_plain(dls):
    seen = []
    class Spy(ActivationRegularizer):
        def after_loss(self):
            super().after_loss()
            seen.append((self.learn.training, self.learn.loss.item(), self.learn.loss_grad.item(),
                         lm_loss(self.learn.pred, *self.learn.yb).item(),
                         activation_penalty(self.raw, self.dropped, self.alpha, self.beta).item()))
    model = TupleLM()
    learn = Learner(dls, model, loss_func=lm_loss, cbs=[ResetState(), Spy(alpha=2., beta=1.)])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    train, valid = [s for s in seen if s[0]], [s for s in seen if not s[0]]
    assert train and valid
    for _, loss, grad_loss, ce, pen in train:
        assert loss == pytest.approx(ce, rel=1e-5) and grad_loss == pytest.approx(ce + pen, rel=1e-5) and pen > 0
    for _, loss, grad_loss, ce, pen in valid: assert loss == pytest.approx(ce, rel=1e-5) and grad_loss == pytest.approx(ce, rel=1e-5)
    # ours: before training, before validation, after fit; fastai's TrainEvalCallback adds one before fit
    alone = TupleLM()
    learn = Learner(dls, alone, loss_func=lm_loss, cbs=[ActivationRegularizer()])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert alone.resets == 1 and model.resets == 1 + 3

def test_lm_callbacks_and_models_without_reset(dls):
    cbs = lm_callbacks(2., 1.)
    assert [type(c) for c in cbs] == [ResetState, ActivationRegularizer] and (cbs[1].alpha, cbs[1].beta) == (2., 1.)
    plain = nn.Sequential(nn.Embedding(30, 8), nn.Linear(8, 30))  # no reset(), plain logits: the callbacks do nothing
    learn = Learner(dls, plain, loss_func=lm_loss, cbs=lm_callbacks(2., 1.))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert learn.recorder.values[-1][1] > 0
