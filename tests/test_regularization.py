"Dropout, weight tying, AWD-LSTM regularizers and the regularized LSTM LM (installed package)."
import io, pytest, torch
from torch import nn
from humannums.lstm import LSTM
from humannums.regularization import *

def test_dropout_statistics_match_nn_dropout():
    x = torch.rand(500, 1000) + 0.5
    for p in (0.2, 0.6):
        torch.manual_seed(0)
        for d in (Dropout(p), nn.Dropout(p)):
            y = d(x)
            assert abs((y == 0).float().mean().item() - p) < 5e-3
            assert abs(y.mean().item() - x.mean().item()) < 1e-2
    d = Dropout(0.5).eval()
    assert torch.equal(d(x), x) and torch.equal(Dropout(0.)(x), x)

def test_dropout_scales_kept_values():
    torch.manual_seed(0)
    y = Dropout(0.75)(torch.ones(1000))
    assert set(y.unique().tolist()) == {0., 4.}

@pytest.mark.parametrize('p', [1, 1.5, -0.1])
def test_dropout_p_is_validated(p):
    with pytest.raises(ValueError, match=r'in \[0, 1\)'): Dropout(p)
    with pytest.raises(ValueError, match=r'in \[0, 1\)'): LockedDropout(p)

def test_tying_identity_parameters_save_load(tmp_path):
    m = RegularizedLSTMLM(30, 8)
    assert m.h_o.weight is m.i_h.weight
    assert sum(p is m.i_h.weight for p in m.parameters()) == 1
    ids = [id(p) for p in m.parameters()]; assert len(ids) == len(set(ids))
    with torch.no_grad(): m.i_h.weight.add_(1.)
    torch.save(m.state_dict(), tmp_path/'m.pth')
    fresh = RegularizedLSTMLM(30, 8)
    fresh.load_state_dict(torch.load(tmp_path/'m.pth', weights_only=True))
    assert fresh.h_o.weight is fresh.i_h.weight                      # still one Parameter after load
    assert torch.equal(fresh.h_o.weight, m.i_h.weight)
    with torch.no_grad(): fresh.i_h.weight.zero_()
    assert fresh.h_o.weight.abs().sum() == 0
    with pytest.raises(ValueError, match='cannot tie'): tie_weights(nn.Linear(16, 30), nn.Embedding(30, 8))
    untied = RegularizedLSTMLM(30, 8, tie=False)
    assert untied.h_o.weight is not untied.i_h.weight

def test_weight_drop_gradients_and_eval():
    torch.manual_seed(0)
    wd, plain = WeightDropLSTM(3, 6, 2, weight_p=0.5), LSTM(3, 6, 2)
    plain.load_state_dict(wd.state_dict())
    assert all(isinstance(getattr(wd, f'weight_hh_l{k}'), nn.Parameter) for k in range(2))
    before = wd.weight_hh_l1.detach().clone()
    x = torch.randn(2, 5, 3)
    out, _ = wd(x)
    assert not torch.allclose(out, plain(x)[0])                       # training uses dropped weights
    out.sum().backward()
    for k in range(2):
        g = getattr(wd, f'weight_hh_l{k}').grad
        assert g is not None and g.abs().sum() > 0
    assert (wd.weight_hh_l1.grad == 0).any()                          # dropped entries get no gradient
    assert torch.equal(wd.weight_hh_l1.detach(), before)
    wd.eval()
    torch.testing.assert_close(wd(x)[0], plain(x)[0], atol=1e-6, rtol=0)   # eval: the raw weight unchanged

def test_locked_dropout_mask_shared_over_time():
    torch.manual_seed(0)
    y = LockedDropout(0.5)(torch.ones(8, 20, 16))
    assert torch.equal(y, y[:, :1].expand_as(y))
    assert (y == 0).any() and (y == 2).any()
    assert not all(torch.equal(y[0], y[i]) for i in range(1, 8))

def test_embedding_dropout_whole_rows():
    torch.manual_seed(0)
    emb = EmbeddingDropout(20, 5, p=0.5)
    x = torch.arange(20).repeat(4, 1)
    r = emb(x) / emb.weight[x]
    assert set(r.detach().unique().tolist()) <= {0., 2.}
    assert torch.equal(r, r[:1, :, :1].expand_as(r))                 # whole row, same for the whole batch
    emb.eval(); assert torch.equal(emb(x), emb.weight[x])

def test_models_return_logits_raw_dropped():
    x = torch.randint(0, 30, (4, 7))
    for m in (RegularizedLSTMLM(30, 8), RegularizedLSTMLM(30, 8, scratch=False), AWDLSTMLM(30, 8, 3)):
        logits, raw, dropped = m(x)
        assert logits.shape == (4, 7, 30) and raw.shape == dropped.shape == (4, 7, 8)
        assert m(x[:1])[0].shape == (1, 7, 30)
        m.reset(); assert m.state is None
    assert LMModel7 is RegularizedLSTMLM

def test_plain_learner_path():
    "The book's path: a plain fastai Learner with the reset and AR/TAR callbacks; loss and metrics see logits only"
    from fastai.learner import Learner
    from fastai.metrics import accuracy
    from fastai.torch_core import set_seed
    from humannums.data import human_numbers, lm_dataloaders, lm_loss
    from humannums.callbacks import ResetState, ActivationRegularizer
    nums, vocab = human_numbers()
    dls = lm_dataloaders(nums[:5000], vocab, sl=16, every_token=True, bs=16, device='cpu')
    set_seed(0)
    learn = Learner(dls, RegularizedLSTMLM(len(vocab), 32, 2, 0.4), loss_func=lm_loss, metrics=accuracy,
                    cbs=[ResetState(), ActivationRegularizer(alpha=2, beta=1)])
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2, wd=0.1)
    val_loss, acc = learn.recorder.values[-1][1:]
    assert 0 < val_loss < 4 and acc > 0.15
    preds, targs = learn.get_preds()
    assert preds.shape[-1] == len(vocab)                               # logits only, not the tuple

def test_recipes_are_not_exported_here():
    "Training recipes are named in one place, `humannums.train.RECIPES`; this module exports models and pieces only"
    import humannums.regularization as reg
    for name in ('TUNED', 'AWD_RECIPE', 'recipe_model'):
        assert not hasattr(reg, name) and name not in reg.__all__

def test_tuned_model_configuration():
    "The tuned recipe's model: LMModel7 with nn.LSTM inside and light dropout computes the scratch model's function"
    torch.manual_seed(0)
    fast, scratch = RegularizedLSTMLM(30, 16, 2, p=0.2, scratch=False), RegularizedLSTMLM(30, 16, 2, p=0.2)
    assert isinstance(fast.rnn, nn.LSTM) and isinstance(scratch.rnn, LSTM) and fast.drop.p == 0.2
    assert fast.h_o.weight is fast.i_h.weight
    scratch.load_state_dict(fast.state_dict())
    fast.eval(); scratch.eval()
    x = torch.randint(0, 30, (3, 6))
    for _ in range(2): torch.testing.assert_close(fast(x)[0], scratch(x)[0], atol=1e-5, rtol=0)   # the kept state too
