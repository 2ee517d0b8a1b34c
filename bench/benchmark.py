#!/usr/bin/env python
"""Seconds per epoch of humannums training next to a plain PyTorch loop and the book's own pipeline, per recipe.

Run by hand (not a test):  python bench/benchmark.py [--recipes linear,lstm] [--reps 5] [--epochs 1] [--threads 1]

For every recipe, alternating the variants in one process, `--reps` times, it prints medians of:
  humannums  `lm_learner` (LMLearner + FusedAdam + our callbacks) on our `LMLoader`s, `fit_one_cycle`
  plain      the same model, batches, optimizer (AdamW, fastai's hyperparameters and weight-decay exemptions) and
             one-cycle schedule (written below) in a minimal PyTorch loop: no fastai
  fastai     a stock fastai `Learner` (fastai's Python `Adam`, default callbacks) + our callbacks, on our loaders:
             what `lm_learner` was before the speed work
  book       the book's chapter 12 code: `DataLoaders.from_dsets` over Python lists of per-sample tensors
             (`group_chunks` for stateful models), the book's model class and `Learner` (ModelResetter, TextLearner)
  other      for models with a `scratch` switch (LSTM, RNN), the same recipe with the other layer (ours <-> torch's)
then the ratios humannums/plain, fastai/humannums, book/humannums, scratch/torch layer, tokens per second, the process's
peak RSS, and the RSS change and live tensor count from the first to the last epoch of a longer humannums run (state
detached, no history kept: no growth).
Every side runs with the same number of PyTorch threads (`--threads`); the seed is fixed before each model is built,
so every side starts from the same weights. Timings on a shared machine are noisy: read medians and ratios.
"""
from __future__ import annotations
import argparse, contextlib, gc, inspect, io, math, os, platform, resource, statistics, sys, time, warnings
from dataclasses import replace

import torch, torch.nn.functional as F
from torch import nn

from fastai.basics import Learner, DataLoaders, L, Module, accuracy, CrossEntropyLossFlat, tensor
from fastai.callback.rnn import ModelResetter
from fastai.callback.schedule import fit_one_cycle  # noqa: F401  (Learner.fit_one_cycle)
from fastai.torch_core import norm_bias_params

from humannums.data import human_numbers, human_numbers_tokens, lm_dataloaders, lm_loss
from humannums.callbacks import lm_learner, lm_callbacks

# ----------------------------------------------------------------------------------------------------------------------
# The book's code (fastbook chapter 12), as printed: data pipeline and models. `bs` is a global there, and so here.
bs = 64

def book_data(sl:int, every_token:bool, grouped:bool):
    "The book's `DataLoaders` for one layout: lists of per-sample tensors, `group_chunks` for the stateful models"
    tokens = L(human_numbers_tokens())
    vocab = L(*tokens).unique()
    word2idx = {w:i for i,w in enumerate(vocab)}
    nums = L(word2idx[i] for i in tokens)
    if every_token: seqs = L((tensor(nums[i:i+sl]), tensor(nums[i+1:i+sl+1])) for i in range(0,len(nums)-sl-1,sl))
    else:           seqs = L((tensor(nums[i:i+3]), nums[i+3]) for i in range(0,len(nums)-4,3))
    cut = int(len(seqs) * 0.8)
    if not grouped: return DataLoaders.from_dsets(seqs[:cut], seqs[cut:], bs=64, shuffle=False)
    def group_chunks(ds, bs):
        m = len(ds) // bs
        new_ds = L()
        for i in range(m): new_ds += L(ds[i + m*j] for j in range(bs))
        return new_ds
    return DataLoaders.from_dsets(group_chunks(seqs[:cut], bs), group_chunks(seqs[cut:], bs), bs=bs, drop_last=True, shuffle=False)

class LMModel1(Module):
    def __init__(self, vocab_sz, n_hidden):
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.h_h = nn.Linear(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden,vocab_sz)
    def forward(self, x):
        h = F.relu(self.h_h(self.i_h(x[:,0])))
        h = h + self.i_h(x[:,1])
        h = F.relu(self.h_h(h))
        h = h + self.i_h(x[:,2])
        h = F.relu(self.h_h(h))
        return self.h_o(h)

class LMModel2(Module):
    def __init__(self, vocab_sz, n_hidden):
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.h_h = nn.Linear(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden,vocab_sz)
    def forward(self, x):
        h = 0
        for i in range(3):
            h = h + self.i_h(x[:,i])
            h = F.relu(self.h_h(h))
        return self.h_o(h)

class LMModel3(Module):
    def __init__(self, vocab_sz, n_hidden):
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.h_h = nn.Linear(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden,vocab_sz)
        self.h = 0
    def forward(self, x):
        for i in range(3):
            self.h = self.h + self.i_h(x[:,i])
            self.h = F.relu(self.h_h(self.h))
        out = self.h_o(self.h)
        self.h = self.h.detach()
        return out
    def reset(self): self.h = 0

sl = 16
class LMModel4(Module):
    def __init__(self, vocab_sz, n_hidden):
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.h_h = nn.Linear(n_hidden, n_hidden)
        self.h_o = nn.Linear(n_hidden,vocab_sz)
        self.h = 0
    def forward(self, x):
        outs = []
        for i in range(sl):
            self.h = self.h + self.i_h(x[:,i])
            self.h = F.relu(self.h_h(self.h))
            outs.append(self.h_o(self.h))
        self.h = self.h.detach()
        return torch.stack(outs, dim=1)
    def reset(self): self.h = 0

def book_loss_func(inp, targ): return F.cross_entropy(inp.view(-1, 30), targ.view(-1))   # the book: len(vocab) == 30

class LMModel5(Module):
    def __init__(self, vocab_sz, n_hidden, n_layers):
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.rnn = nn.RNN(n_hidden, n_hidden, n_layers, batch_first=True)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h = torch.zeros(n_layers, bs, n_hidden)
    def forward(self, x):
        res,h = self.rnn(self.i_h(x), self.h)
        self.h = h.detach()
        return self.h_o(res)
    def reset(self): self.h.zero_()

class LMModel6(Module):
    def __init__(self, vocab_sz, n_hidden, n_layers):
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.rnn = nn.LSTM(n_hidden, n_hidden, n_layers, batch_first=True)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h = [torch.zeros(n_layers, bs, n_hidden) for _ in range(2)]
    def forward(self, x):
        res,h = self.rnn(self.i_h(x), self.h)
        self.h = [h_.detach() for h_ in h]
        return self.h_o(res)
    def reset(self):
        for h in self.h: h.zero_()

class LMModel7(Module):
    def __init__(self, vocab_sz, n_hidden, n_layers, p):
        self.i_h = nn.Embedding(vocab_sz, n_hidden)
        self.rnn = nn.LSTM(n_hidden, n_hidden, n_layers, batch_first=True)
        self.drop = nn.Dropout(p)
        self.h_o = nn.Linear(n_hidden, vocab_sz)
        self.h_o.weight = self.i_h.weight
        self.h = [torch.zeros(n_layers, bs, n_hidden) for _ in range(2)]
    def forward(self, x):
        raw,h = self.rnn(self.i_h(x), self.h)
        out = self.drop(raw)
        self.h = [h_.detach() for h_ in h]
        return self.h_o(out),raw,out
    def reset(self):
        for h in self.h: h.zero_()

def book_learner(book:str, dls)->Learner:
    "The book's model and `Learner` for `book` (e.g. 'LMModel3'), with the book's hyperparameters' model sizes"
    if book == 'LMModel1': return Learner(dls, LMModel1(30, 64), loss_func=F.cross_entropy, metrics=accuracy)
    if book == 'LMModel2': return Learner(dls, LMModel2(30, 64), loss_func=F.cross_entropy, metrics=accuracy)
    if book == 'LMModel3': return Learner(dls, LMModel3(30, 64), loss_func=F.cross_entropy, metrics=accuracy, cbs=ModelResetter)
    if book == 'LMModel4': return Learner(dls, LMModel4(30, 64), loss_func=book_loss_func, metrics=accuracy, cbs=ModelResetter)
    if book == 'LMModel5':
        return Learner(dls, LMModel5(30, 64, 2), loss_func=CrossEntropyLossFlat(), metrics=accuracy, cbs=ModelResetter)
    if book == 'LMModel6':
        return Learner(dls, LMModel6(30, 64, 2), loss_func=CrossEntropyLossFlat(), metrics=accuracy, cbs=ModelResetter)
    if book == 'LMModel7':
        from fastai.text.learner import TextLearner
        return TextLearner(dls, LMModel7(30, 64, 2, 0.4), loss_func=CrossEntropyLossFlat(), metrics=accuracy)
    raise KeyError(book)

BOOK_LAYOUT = {'LMModel1': (3, False, False), 'LMModel2': (3, False, False), 'LMModel3': (3, False, True),
               'LMModel4': (16, True, True), 'LMModel5': (16, True, True), 'LMModel6': (16, True, True),
               'LMModel7': (16, True, True)}   # (sl, every_token, grouped)

# ----------------------------------------------------------------------------------------------------------------------
# The plain PyTorch loop: same model, batches, optimizer and one-cycle schedule as `fit_one_cycle`, no fastai.
def one_cycle(pct_start, start, middle, end):
    "Cosine from `start` to `middle` over the first `pct_start` of training, then cosine to `end` (fastai's one-cycle)"
    def cos(a, b, p): return a + (1 + math.cos(math.pi*(1-p))) * (b-a) / 2
    def f(pos): return cos(start, middle, pos/pct_start) if pos < pct_start else cos(middle, end, (pos-pct_start)/(1-pct_start))
    return f

def plain_fit(model:nn.Module, dls, epochs:int, lr_max:float, wd:float|None, alpha:float, beta:float,
              div=25., div_final=1e5, pct_start=0.25, moms=(0.95, 0.85, 0.95)):
    "Train `model` like `fit_one_cycle` with a minimal loop; returns (valid loss, valid accuracy) of the last epoch"
    wd = 0.01 if wd is None else wd
    no_wd = {id(p) for p in norm_bias_params(model) if isinstance(p, torch.Tensor)}   # fastai: no weight decay on biases
    params = list(model.parameters())
    groups = [{'params': [p for p in params if id(p) not in no_wd]},
              {'params': [p for p in params if id(p) in no_wd], 'weight_decay': 0.}]
    opt = torch.optim.AdamW([g for g in groups if g['params']], lr=lr_max, betas=(moms[0], 0.99), eps=1e-5,
                            weight_decay=wd, fused=True)
    lr_at, mom_at = one_cycle(pct_start, lr_max/div, lr_max, lr_max/div_final), one_cycle(pct_start, *moms)
    reset = getattr(model, 'reset', lambda: None)
    n, step = epochs*len(dls.train), 0
    for epoch in range(epochs):
        model.train(); reset()
        for x, y in dls.train:
            lr, mom = lr_at(step/n), mom_at(step/n); step += 1
            for g in opt.param_groups: g['lr'], g['betas'] = lr, (mom, 0.99)
            out = model(x)
            if isinstance(out, tuple):
                out, raw, dropped = out
                loss = lm_loss(out, y)
                if alpha: loss = loss + alpha * dropped.pow(2).mean()
                if beta and raw.shape[1] > 1: loss = loss + beta * (raw[:, 1:] - raw[:, :-1]).pow(2).mean()
            else: loss = lm_loss(out, y)
            loss.backward(); opt.step(); opt.zero_grad()
        model.eval(); reset()
        tot_loss, right, count = 0., 0, 0
        with torch.no_grad():
            for x, y in dls.valid:
                out = model(x)
                if isinstance(out, tuple): out = out[0]
                tot_loss += lm_loss(out, y) * len(y)
                right += (out.argmax(-1) == y).sum(); count += len(y)
    reset()
    return (tot_loss/count).item(), (right/(count*(y.numel()//len(y)))).item()

# ----------------------------------------------------------------------------------------------------------------------
def recipes()->dict:
    "humannums' recipes, by name"
    from humannums.train import RECIPES
    return dict(RECIPES)

def rss_mb()->float:
    "Resident memory of this process now, MB"
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20

def peak_rss_mb()->float: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

@contextlib.contextmanager
def quiet():
    "Swallow what fastai's progress bar and table print (the bar still runs)"
    with contextlib.redirect_stdout(io.StringIO()): yield

def timed(f):
    "Run `f()`; return (wall seconds, cpu seconds, result)"
    gc.collect()
    w, c = time.perf_counter(), time.process_time()
    r = f()
    return time.perf_counter() - w, time.process_time() - c, r

def bench_recipe(recipe, nums, vocab, args)->dict:
    "Time every variant of `recipe`, alternating, `args.reps` times"
    E, threads = args.epochs, args.threads
    dls = lm_dataloaders(nums, vocab, recipe.sl, recipe.every_token, recipe.bs, recipe.grouped, device='cpu')
    def build(**kw):
        torch.manual_seed(args.seed)
        return recipe.build(len(vocab)) if not kw else replace(recipe, model_kwargs={**recipe.model_kwargs, **kw}).build(len(vocab))
    def run_learner(learn):
        with quiet(): learn.fit_one_cycle(E, recipe.lr, wd=recipe.wd)
        return learn.recorder.values[-1][1:]                       # valid loss, accuracy
    variants = {
        'humannums': lambda: run_learner(lm_learner(dls, build(), recipe.alpha, recipe.beta, n_threads=threads)),
        'plain': lambda: plain_fit(build(), dls, E, recipe.lr, recipe.wd, recipe.alpha, recipe.beta),
    }
    if not args.no_fastai:
        variants['fastai'] = lambda: run_learner(Learner(dls, build(), loss_func=lm_loss, metrics=accuracy,
                                                         cbs=lm_callbacks(recipe.alpha, recipe.beta)))
    if not args.no_book and recipe.book in BOOK_LAYOUT and recipe.n_hid == 64 and recipe.bs == 64:
        bdls = book_data(*BOOK_LAYOUT[recipe.book])
        def run_book():
            torch.manual_seed(args.seed)
            learn = book_learner(recipe.book, bdls)
            with quiet(): learn.fit_one_cycle(E, recipe.lr, wd=recipe.wd)
            return learn.recorder.values[-1][1:]
        variants['book'] = run_book
    scratch = recipe.model_kwargs.get('scratch', None)
    if 'scratch' in inspect.signature(recipe.model).parameters:
        if scratch is None: scratch = inspect.signature(recipe.model).parameters['scratch'].default
        other = 'humannums torch' if scratch else 'humannums scratch'
        variants[other] = lambda: run_learner(lm_learner(dls, build(scratch=not scratch), recipe.alpha, recipe.beta,
                                                         n_threads=threads))
    # warm up (first calls of kernels, torch.optim's one-time import of torch._dynamo), then alternate
    with quiet():
        for k in ('humannums', 'plain'): variants[k]()
    wall, cpu, res = {k: [] for k in variants}, {k: [] for k in variants}, {}
    for r in range(args.reps):
        for k, f in variants.items():
            w, c, res[k] = timed(f)
            wall[k].append(w/E); cpu[k].append(c/E)
    # memory: two longer humannums runs (the first lets the allocator settle), RSS and live tensors after every epoch
    from fastai.callback.core import Callback
    class RSS(Callback):
        def before_fit(self): self.mb, self.tensors = [], []
        def after_epoch(self):
            gc.collect(); self.mb.append(rss_mb())
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')                # isinstance on some lazy torch modules warns
                n = sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))
            self.tensors.append(n - len(self.learn.recorder.losses))   # the recorder keeps one loss tensor a batch
    for _ in range(2):
        rss = RSS()
        learn = lm_learner(dls, build(), recipe.alpha, recipe.beta, n_threads=threads, cbs=rss)
        with quiet(): learn.fit_one_cycle(args.mem_epochs, recipe.lr, wd=recipe.wd)
        del learn
    tokens = sum(x.numel() for dl in (dls.train, dls.valid) for x, _ in dl)   # input tokens of one epoch
    if scratch is not None:
        sc = wall['humannums'] if scratch else wall['humannums scratch']
        nn_ = wall['humannums torch'] if scratch else wall['humannums']
    return dict(wall={k: statistics.median(v) for k, v in wall.items()}, cpu={k: statistics.median(v) for k, v in cpu.items()},
                acc={k: v[1] for k, v in res.items()}, tokens=tokens, rss=rss.mb, tensors=rss.tensors, peak=peak_rss_mb(),
                scratch_ratio=statistics.median(sc)/statistics.median(nn_) if scratch is not None else None,
                batches=(len(dls.train), len(dls.valid)))

def fmt(x, spec='.2f', none='-'): return none if x is None else format(x, spec)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--recipes', default=None, help='comma-separated recipe names (default: all)')
    p.add_argument('--reps', type=int, default=5, help='timed rounds; each runs every variant once (default 5)')
    p.add_argument('--epochs', type=int, default=1, help='epochs of fit_one_cycle per timed run (default 1)')
    p.add_argument('--threads', type=int, default=1, help='PyTorch threads, the same for every variant (default 1)')
    p.add_argument('--mem-epochs', type=int, default=3, help='epochs of the humannums runs that track memory (default 3)')
    p.add_argument('--seed', type=int, default=0, help='seed fixed before each model is built (default 0)')
    p.add_argument('--no-book', action='store_true', help="skip the book's pipeline")
    p.add_argument('--no-fastai', action='store_true', help='skip the stock fastai Learner')
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    allr = recipes()
    names = args.recipes.split(',') if args.recipes else list(allr)
    if bad := [n for n in names if n not in allr]: p.error(f"unknown recipe(s) {', '.join(bad)}: choose from {', '.join(allr)}")
    nums, vocab = human_numbers()
    torch.optim.AdamW([nn.Parameter(torch.zeros(1))], fused=True)   # torch.optim's one-time import, outside the timings
    print(f"humannums benchmark: torch {torch.__version__}, {args.threads} thread(s), {os.cpu_count()} CPUs, "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}, {platform.python_version()}; "
          f"medians of {args.reps} alternating runs of {args.epochs} epoch(s)", flush=True)
    rows = []
    for n in names:
        t0 = time.time()
        r = bench_recipe(allr[n], nums, vocab, args)
        r['name'], r['book'] = n, allr[n].book
        rows.append(r)
        w = r['wall']
        print(f"  {n}: " + ', '.join(f"{k} {v:.3f}s" for k, v in w.items()) + f"  ({time.time()-t0:.0f}s)", flush=True)
    hdr = ['recipe', 'book', 'batches', 'hn s/ep', 'plain s/ep', 'fastai s/ep', 'book s/ep', 'hn/plain', 'hn/plain cpu',
           'fastai/hn', 'book/hn', 'scratch/torch', 'hn tok/s', 'acc hn/plain/book', 'peak RSS MB', 'RSS growth MB', 'live tensors']
    lines = ['| ' + ' | '.join(hdr) + ' |', '|' + '---|'*len(hdr)]
    for r in rows:
        w, c, a = r['wall'], r['cpu'], r['acc']
        lines.append('| ' + ' | '.join([
            r['name'], r['book'], f"{r['batches'][0]}+{r['batches'][1]}", fmt(w['humannums'], '.3f'), fmt(w['plain'], '.3f'),
            fmt(w.get('fastai'), '.3f'), fmt(w.get('book'), '.3f'),
            fmt(w['humannums']/w['plain']), fmt(c['humannums']/c['plain']),
            fmt(w['fastai']/w['humannums'] if 'fastai' in w else None), fmt(w['book']/w['humannums'] if 'book' in w else None),
            fmt(r['scratch_ratio']), f"{r['tokens']/w['humannums']:,.0f}",
            '/'.join(fmt(a.get(k), '.3f') for k in ('humannums', 'plain', 'book')),
            f"{r['peak']:.0f}", f"{r['rss'][-1]-r['rss'][0]:+.1f}", f"{r['tensors'][0]}->{r['tensors'][-1]}"]) + ' |')
    print('\n' + '\n'.join(lines))
    print("\nhn = humannums (lm_learner); plain = minimal PyTorch loop, same optimizer, schedule and batches; fastai = stock "
          "Learner on our loaders; book = the book's DataLoaders.from_dsets + Learner. Seconds are wall-clock medians per "
          "epoch (train + validation); 'hn/plain cpu' uses process CPU time instead. Targets: hn/plain <= 1.15; book/hn >= 3 "
          "(3-token models), >= 1.5 (sl 16). acc = validation accuracy after the timed epochs (a check that all sides train "
          "alike). RSS growth and live tensors: from the end of the first to the end of the last epoch of a --mem-epochs run of "
          "humannums (the second of two, so that the allocator has settled); live tensors do not count the recorder's one smoothed "
          "loss per batch: a constant count means no state or history kept from batch to batch.")

if __name__ == '__main__': main()
