"Recipes, metrics, training on a text file and model files, on the installed package."
import math, os
from types import SimpleNamespace
import pytest, torch
from humannums.train import *
from humannums.data import Vocab

torch.set_num_threads(1)            # tiny models: one thread is fastest on a shared CPU

def test_recipes_in_book_order():
    names = list(RECIPES)
    book_order = ['linear', 'looped', 'stateful', 'sequence', 'multilayer', 'lstm', 'regularized', 'awd', 'tuned']
    assert names == [n for n in book_order if n in names] and names[:2] == ['linear', 'looped']
    assert RECIPES['linear'].book == 'LMModel1' and RECIPES['linear'].book_accuracy == 0.494
    assert all(r.bs == 64 and r.n_hid == 64 for r in RECIPES.values() if r.book.startswith('LMModel'))
    with pytest.raises(ValueError, match='choose one of linear, looped'): get_recipe('nope')
    with pytest.raises(ValueError, match='lr must be a number > 0'): with_overrides(RECIPES['linear'], lr=-1)
    with pytest.raises(ValueError, match='epochs must be a whole number >= 1'): with_overrides(RECIPES['linear'], epochs=0)

def test_perplexity_is_over_all_tokens():
    ppl = Perplexity(); ppl.reset()
    batches = [(torch.tensor([[2., 0.], [0., 1.]]), torch.tensor([0, 0])), (torch.tensor([[0., 3.]]), torch.tensor([1]))]
    for p, t in batches: ppl.accumulate(SimpleNamespace(pred=p, yb=(t,)))
    total = sum(torch.nn.functional.cross_entropy(p, t, reduction='sum') for p, t in batches)
    assert ppl.value == pytest.approx(math.exp(total.item()/3))

def test_whole_number_accuracy_across_grouped_batches():
    stream = torch.tensor([0, 1, 2, 0, 3, 0, 4, 5, 6, 0, 7])            # '. a b . c . d e f . g', sep 0
    x, y = stream[:-1], stream[1:]
    ok = torch.ones_like(y, dtype=torch.bool); ok[6] = False             # 'e' wrong
    m = WholeNumberAccuracy(sep=0); m.reset()
    X, Y, OK = x.view(2, 5), y.view(2, 5), ok.view(2, 5)                # two streams, batches of 2 then 2 then 1 tokens
    for i in range(0, 5, 2): m.update(X[:, i:i+2], Y[:, i:i+2], OK[:, i:i+2])
    assert (m.right, m.total) == (2, 3)

@pytest.fixture(scope='module')
def quick_linear(): return train('linear', quick=True, progress=False, device='cpu')

def test_train_quick_and_history(quick_linear):
    learn = quick_linear
    assert list(learn.history.columns) == ['train_loss', 'valid_loss', 'accuracy', 'perplexity', 'seconds']
    assert len(learn.history) == 1 and learn.recipe.epochs == 1
    row = summarize(learn)
    assert row['recipe'] == 'linear' and math.isnan(row['whole_number_accuracy'])

def test_same_seed_same_result():
    a, b = [train('linear', quick=True, progress=False, seed=3, device='cpu').history['valid_loss'].item() for _ in range(2)]
    c = train('linear', quick=True, progress=False, seed=4, device='cpu').history['valid_loss'].item()
    assert a == b and a != c

def test_own_text_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match='does not exist'): train('linear', text=tmp_path/'nope.txt', progress=False)
    (tmp_path/'empty.txt').write_text('\n')
    with pytest.raises(ValueError, match='is empty'): train('linear', text=tmp_path/'empty.txt', progress=False)
    (tmp_path/'bytes.txt').write_bytes(b'ok \xff\xfe')
    with pytest.raises(ValueError, match='not UTF-8'): train('linear', text=tmp_path/'bytes.txt', progress=False)
    (tmp_path/'short.txt').write_text('a b c . ' * 20)
    with pytest.raises(ValueError, match=r'80 tokens: too few .* bs=64, sl=3 .*lower bs to'):
        train('linear', text=tmp_path/'short.txt', progress=False)

def test_own_text_trains(tmp_path):
    f = tmp_path/'t.txt'
    f.write_text(' . '.join(['red green blue', 'cyan', 'magenta yellow']*100))
    learn = train('linear', text=f, bs=16, progress=False, device='cpu', epochs=3, lr=1e-2)
    assert len(learn.vocab) == 7 and learn.text == str(f.resolve())
    assert learn.history['accuracy'].iloc[-1] > 0.5
    lm = load_model(save_model(learn, tmp_path/'t.pth'))
    f.rename(tmp_path/'moved.txt')                                       # the text the model records has moved
    with pytest.raises(FileNotFoundError, match='does not exist any more: give the text.s new path'): evaluate(lm)
    assert evaluate(lm, text=tmp_path/'moved.txt')['accuracy'] == pytest.approx(learn.history['accuracy'].iloc[-1], abs=1e-6)
    with pytest.raises(ValueError, match="device must be 'cpu', 'cuda' or 'cuda:N'"): train('linear', text=f, device='tpu')

def test_save_load_round_trip_and_errors(tmp_path, quick_linear):
    learn = quick_linear
    f = save_model(learn, tmp_path/'m'/'linear.pth')                    # folders are created
    lm = load_model(f)
    assert lm.recipe == learn.recipe and lm.vocab.itos == learn.vocab.itos
    x = torch.tensor([[0, 1, 2]])
    assert torch.allclose(lm.model(x), learn.model.cpu().eval()(x))
    before = f.read_bytes()
    with pytest.raises(FileExistsError, match='overwrite=True'): save_model(learn, f)
    assert f.read_bytes() == before
    save_model(learn, f, overwrite=True)
    assert sorted(os.listdir(f.parent)) == ['linear.pth']                # no temporary file left
    with pytest.raises(FileNotFoundError, match='does not exist'): load_model(tmp_path/'nope.pth')
    (tmp_path/'trunc.pth').write_bytes(before[:len(before)//2])
    with pytest.raises(ModelFileError, match='truncated, corrupt'): load_model(tmp_path/'trunc.pth')
    torch.save({'a': torch.zeros(1)}, tmp_path/'other.pth')
    with pytest.raises(ModelFileError, match='not a humannums model file'): load_model(tmp_path/'other.pth')
    torch.save(SimpleNamespace(x=1), tmp_path/'obj.pth')
    with pytest.raises(ModelFileError, match='never runs code'): load_model(tmp_path/'obj.pth')
    # a vocab or recipe that would not rebuild the model is refused when saving...
    with pytest.raises(ValueError, match='not saved'): save_model(learn.model, tmp_path/'v.pth', recipe='linear', vocab=learn.vocab.itos[:-1])
    with pytest.raises(ValueError, match='the lstm recipe builds a LSTMLM'): save_model(learn.model, tmp_path/'r.pth', recipe='lstm', vocab=learn.vocab)
    assert not (tmp_path/'v.pth').exists() and not (tmp_path/'r.pth').exists()
    # ...and a hand-edited file that does not fit is refused when loading
    d = torch.load(f, weights_only=True); d['vocab'] = d['vocab'][:-1]; torch.save(d, tmp_path/'v.pth')
    with pytest.raises(ModelFileError, match='do not match its weights'): load_model(tmp_path/'v.pth')
    d = torch.load(f, weights_only=True); d['recipe'] = RECIPES['lstm'].hyperparameters(); torch.save(d, tmp_path/'r.pth')
    with pytest.raises(ModelFileError, match='missing for the lstm recipe'): load_model(tmp_path/'r.pth')
