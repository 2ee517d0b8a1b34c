"Generation and counting on the installed package, for every recipe."
import pytest, torch
from humannums.train import RECIPES, TrainedLM, train, as_trained_lm, save_model, load_model
from humannums.generate import *
from humannums.data import human_numbers, number_to_words, lm_dataloaders, lm_loss, Vocab
from humannums.callbacks import lm_learner
from humannums.lstm import LSTMLM
from humannums.rnn import MultiLayerRNNLM
from humannums.regularization import RegularizedLSTMLM, AWDLSTMLM

torch.set_num_threads(1)            # tiny models: one thread is fastest on a shared CPU

PROMPT = 'seven thousand nine hundred ninety eight .'

@pytest.fixture(scope='module')
def vocab(): return human_numbers()[1]

@pytest.mark.parametrize('name', list(RECIPES))
def test_every_recipe_generates(name, vocab):
    torch.manual_seed(0)
    r = RECIPES[name]
    lm = TrainedLM(r.build(len(vocab)), r, vocab)
    greedy = generate(lm, PROMPT, n=10)
    assert len(greedy.split()) == 10 and all(t in vocab for t in greedy.split())
    assert generate(lm, PROMPT, n=10, temperature=1e-9) == greedy            # near-zero temperature is greedy
    assert generate(lm, PROMPT, n=10, temperature=1.5, seed=7) == generate(lm, PROMPT, n=10, temperature=1.5, seed=7)
    # stepping token by token gives what a fresh pass over the whole sequence predicts
    ids = encode_prompt(lm, PROMPT) + vocab.numericalize(greedy.split()).tolist()
    m = lm.model.eval()
    with torch.no_grad():
        for k in range(len(ids) - 10, len(ids)):
            if hasattr(m, 'reset'): m.reset()
            ctx = ids[:k] if r.grouped else ids[k - r.sl:k]
            out = m(torch.tensor([ctx]))
            out = out[0] if isinstance(out, tuple) else out
            assert int((out[0, -1] if out.dim() == 3 else out[0]).argmax()) == ids[k]
    assert isinstance(count_on(lm, start=100, limit=5).count, int)

def test_prompt_errors(vocab):
    r = RECIPES['linear']
    lm = TrainedLM(r.build(len(vocab)), r, vocab)
    with pytest.raises(ValueError, match="not in the model's vocab: 'eleventy'"): generate(lm, 'one . eleventy', n=2)
    assert len(generate(lm, 'one . eleventy two', n=2, unknown='skip').split()) == 2
    with pytest.raises(ValueError, match='reads 3 tokens at a time'): generate(lm, 'one .', n=2)
    with pytest.raises(ValueError, match='temperature must be'): generate(lm, PROMPT, temperature=-1)

def test_count_agrees_with_free_generation():
    learn = train('linear', progress=False, device='cpu', epochs=2, lr=1e-2)
    lm = as_trained_lm(learn)
    c = count_on(lm, start=1001, limit=50)
    prompt = ' . '.join(number_to_words(k) for k in range(998, 1001)) + ' .'
    want = ' '.join(number_to_words(k) + ' .' for k in range(1001, 1051)).split()
    got = generate(lm, prompt, n=len(want)).split()
    n_right = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), len(want))
    done = sum(len(number_to_words(k).split()) + 1 for k in range(1001, 1001 + c.count))
    assert done <= n_right and (c.expected is None or n_right < done + len(c.expected.split()))

def test_count_refuses_a_vocab_without_every_number_word():
    few = Vocab('one two three four five six seven eight nine ten hundred thousand .'.split())
    r = RECIPES['sequence']
    with pytest.raises(ValueError, match="lacks number words \\('eleven'"): count_on(TrainedLM(r.build(len(few)), r, few), start=5)

def test_any_learner_generates_and_saves(tmp_path):
    "A Learner from `lm_learner` (not `train`): recipe from the model's class and the loader, vocab from the DataLoaders"
    nums, vocab = human_numbers()
    dls = lm_dataloaders(nums[:5000], vocab, sl=16, every_token=True, bs=16, device='cpu')
    learn = lm_learner(dls, LSTMLM(len(vocab), 16))
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
    assert len(generate(learn, PROMPT, n=5).split()) == 5 and isinstance(count_on(learn, start=4, limit=3).count, int)
    lm = load_model(save_model(learn, tmp_path/'m.pth'))
    assert lm.recipe.name == 'lstm' and lm.vocab.itos == vocab.itos
    assert generate(lm, PROMPT, n=5) == generate(learn, PROMPT, n=5)
    with pytest.raises(ValueError, match='the linear recipe builds a LinearLM'): generate(as_trained_lm(learn, 'linear'), PROMPT)
    tok, i, probs = learn.predict(PROMPT)                                  # fastai's `predict`: the next token
    assert (tok, i) == (predict_next(learn, PROMPT, k=1)[0][0], int(probs.argmax())) and vocab.itos[i] == tok
    assert probs.shape == (len(vocab),) and abs(float(probs.sum()) - 1) < 1e-5
    with pytest.raises(ValueError, match="'eleventy'"): learn.predict('one . eleventy')

@pytest.mark.parametrize('make', [lambda v: MultiLayerRNNLM(v, 16, 3, scratch=True, nonlinearity='relu'),
                                  lambda v: RegularizedLSTMLM(v, 16, tie=False, scratch=False),
                                  lambda v: AWDLSTMLM(v, 16, tie=False), lambda v: LSTMLM(v, 16, 3)],
                         ids=['MultiLayerRNNLM-relu-scratch', 'RegularizedLSTMLM-untied', 'AWDLSTMLM-untied', 'LSTMLM-3-layers'])
def test_saved_model_computes_what_it_computed(make, tmp_path):
    "Every constructor argument survives a save and load: the loaded model writes the same text"
    nums, vocab = human_numbers()
    dls = lm_dataloaders(nums[:3000], vocab, sl=16, every_token=True, bs=16, device='cpu')
    torch.manual_seed(0)
    learn = lm_learner(dls, make(len(vocab)))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    lm = load_model(save_model(learn, tmp_path/'m.pth'))
    assert type(lm.model) is type(learn.model) and generate(lm, PROMPT, n=12) == generate(learn, PROMPT, n=12)

def test_a_model_the_recipe_cannot_rebuild_is_not_saved(tmp_path):
    nums, vocab = human_numbers()
    model = RegularizedLSTMLM(len(vocab), 16, tie=False)
    del model.tie                                                          # a model that does not record `tie`
    with pytest.raises(ValueError, match='computes something else'): save_model(model, tmp_path/'m.pth', vocab=vocab)
    assert not (tmp_path/'m.pth').exists()

def test_plain_learner_predict_says_what_to_use():
    from fastai.learner import Learner
    nums, vocab = human_numbers()
    dls = lm_dataloaders(nums[:3000], vocab, sl=16, every_token=True, bs=16, device='cpu')
    learn = Learner(dls, LSTMLM(len(vocab), 16), loss_func=lm_loss)
    with pytest.raises(TypeError, match='predict_next'): learn.predict('one . two .')
