#!/usr/bin/env python3
"""Symbol and Bayes-band weights chosen by coordinate ascent on TRAIN's cross-validated
scores (lever "weight calibration" of BENCHMARKS.md §8), with a nested check: the weights
are fitted on four of the five TRAIN folds and scored on the fifth, against the node's
defaults on the same fold. TEST is scored once with the weights fitted on all of TRAIN
(`--test`).

    python3 bench/weights_lab.py NOBAYES.tsv FEAT.jsonl SPAM_CORPUS.out [--blocked] [--max-ham N] [--test]

SPAM_CORPUS.out is the printed report of `spam_corpus --split all` (its symbol table gives
the default weights). Rule: the most spam at tag 5 with at most N ham there (N scaled by
the number of ham scored), smallest total change from the defaults on ties; spam symbols
stay >= 0, Bayes bands non-decreasing.
"""
import argparse
import re
import sys

import numpy as np

sys.path.insert(0, __import__('os').path.dirname(__file__))
import bayes_lab as L  # noqa: E402

STEPS = [x / 2 for x in range(0, 13)]  # 0 .. 6
BAND_NAMES = [n for _, n, _ in L.BANDS]


def defaults(report):
    w = {}
    for line in open(report):
        m = re.match(r'\s+([A-Z0-9_]+)\s+(-?[0-9.]+)\s', line)
        if m:
            w[m.group(1)] = float(m.group(2))
    for _, n, v in L.BANDS:
        w[n] = v
    return w


def matrix(msgs, probs, names, w0):
    """Per message: the score with every named symbol and band removed, and a 0/1 matrix."""
    idx = {n: i for i, n in enumerate(names)}
    x = np.zeros((len(msgs), len(names)))
    rest = np.zeros(len(msgs))
    for r, (m, p) in enumerate(zip(msgs, probs)):
        syms = [s for s in m['syms'] if s and not s.startswith('BAYES_')] + [L.band(p)[0]]
        removed = 0.0
        for s in syms:
            if s in idx:
                x[r, idx[s]] = 1
                removed += w0.get(s, 0.0)
        rest[r] = m['score0'] + L.band(p)[1] - removed
    return rest, x


def evaluate(rest, x, w, spam, tag=5.0):
    tot = rest + x @ w
    t = tot >= tag
    return int((t & spam).sum()), int((t & ~spam).sum())


def fit(rest, x, spam, w0vec, names, max_ham, passes=3):
    w = w0vec.copy()
    band_ix = [names.index(n) for n in BAND_NAMES if n in names]

    def ok(w):
        b = [w[i] for i in band_ix]
        return all(a <= c for a, c in zip(b, b[1:]))

    def key(w):
        rec, ham = evaluate(rest, x, w, spam)
        return (rec if ham <= max_ham else -1, -np.abs(w - w0vec).sum())

    best = key(w)
    for _ in range(passes):
        changed = False
        for j, n in enumerate(names):
            lo = -4.0 if n.startswith('BAYES_') else 0.0
            for v in [s for s in STEPS] + ([-x / 2 for x in range(1, 9)] if lo < 0 else []):
                trial = w.copy()
                trial[j] = v
                if not ok(trial):
                    continue
                k = key(trial)
                if k > best:
                    best, w, changed = k, trial, True
        if not changed:
            break
    return w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('nobayes')
    ap.add_argument('feat')
    ap.add_argument('report')
    ap.add_argument('--blocked', action='store_true')
    ap.add_argument('--max-ham', type=int, default=6, help='TRAIN ham allowed at tag 5 (of 2,625)')
    ap.add_argument('--test', action='store_true')
    a = ap.parse_args()
    L.BLOCKED = a.blocked
    msgs = L.load(a.nobayes, a.feat)
    train, test = L.assign(msgs)
    ptr, pte = L.probabilities(train, test, L.v1)
    w0 = defaults(a.report)
    names = sorted(w0)
    w0vec = np.array([w0[n] for n in names])
    rest, x = matrix(train, ptr, names, w0)
    spam = np.array([m['spam'] for m in train])
    fold = np.array([m['fold'] for m in train])
    nham = int((~spam).sum())
    tot_def, tot_fit = [0, 0], [0, 0]
    for k in range(L.FOLDS):
        tr, va = fold != k, fold == k
        allowed = int(a.max_ham * (~spam[tr]).sum() / nham)
        w = fit(rest[tr], x[tr], spam[tr], w0vec, names, allowed)
        d = evaluate(rest[va], x[va], w0vec, spam[va])
        f = evaluate(rest[va], x[va], w, spam[va])
        tot_def = [tot_def[0] + d[0], tot_def[1] + d[1]]
        tot_fit = [tot_fit[0] + f[0], tot_fit[1] + f[1]]
        print('fold %d: defaults %d spam / %d ham, fitted %d spam / %d ham' % (k, *d, *f), flush=True)
    ns = int(spam.sum())
    print('nested: defaults %.1f%% / %d ham, fitted %.1f%% / %d ham'
          % (tot_def[0] * 100 / ns, tot_def[1], tot_fit[0] * 100 / ns, tot_fit[1]))
    w = fit(rest, x, spam, w0vec, names, a.max_ham)
    rec, ham = evaluate(rest, x, w, spam)
    print('all TRAIN: %.1f%% / %d ham; changes:' % (rec * 100 / ns, ham),
          {n: (w0[n], float(v)) for n, v in zip(names, w) if v != w0[n]})
    if a.test:
        rt, xt = matrix(test, pte, names, w0)
        st = np.array([m['spam'] for m in test])
        for label, vec in (('defaults', w0vec), ('fitted', w)):
            r, h = evaluate(rt, xt, vec, st)
            tot = rt + xt @ vec
            hs = np.sort(tot[~st])[::-1]
            cut = hs[int(0.001 * (~st).sum())] + 0.001
            print('TEST %s: %.1f%% / %d ham at 5; %.1f%% at FP <= 0.1%% (cut %.1f)'
                  % (label, r * 100 / st.sum(), h, (tot[st] >= cut).mean() * 100, cut))


if __name__ == '__main__':
    main()
