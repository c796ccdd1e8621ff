#!/usr/bin/env python3
"""Bayes experiments outside the node (BENCHMARKS.md §8, "Tried and not merged: combining,
word pairs, ..."). Choose on TRAIN only: 5-fold cross-validation within TRAIN, interleaved
(as `spam_corpus --bayes`) or `--blocked` (each fold a contiguous stretch of each folder,
i.e. of time); `--test` scores TEST once per candidate.

It reproduces node/src/bayes/classify.rs from the feature sequences that `spam_corpus
--features` writes (`v1` = the node's tokens: the first 1,500 distinct features), then tries
tokenizer and combining variants. Each message's symbol score without Bayes comes from
`spam_corpus --split all --dump` (no --bayes); the Bayes band weights are the node's
defaults, or chosen on TRAIN with `--grid N` (most TRAIN spam at tag 5 with at most N TRAIN
ham there), so "score" = symbols + band weight.

    spam_corpus DIR --split all --dump NOBAYES.tsv --features FEAT.jsonl
    python3 bench/bayes_lab.py NOBAYES.tsv FEAT.jsonl [--blocked] [--grid N ...] [--test] \
        --variant v1 --variant v1:comb=chi2,clues_max=150 --variant osb4 --variant without-xm

`--unfamiliar ham|both` also reports, per message, the fraction of its plain words (body and
subject, letters only, 3+ characters; at least --min-words of them) that the counts it is
judged by never saw in ham (or at all), its spread over TRAIN, and a grid of one symbol and
of a graded pair on it (BENCHMARKS.md §8, "Unfamiliar to the learned ham");
`--unfamiliar-rule T:W[,T:W]` scores TRAIN (and TEST with --test) with such symbols.

A variant is a name of VARIANTS, or TOKENIZER[:key=value,...] with TOKENIZER one of
TOKENIZERS or `without-KIND+KIND` (v1 minus those feature kinds) and keys of `classify`
(comb=sum|chi2, clue_min, clues_max, scale, s, min_n).
"""
import json, math, sys, argparse
from collections import defaultdict

TOKENS_MAX = 1500
FOLDS = 5
BANDS = [(0.01, 'BAYES_00', -3.0), (0.05, 'BAYES_05', -1.5), (0.20, 'BAYES_20', -0.5),
         (0.40, 'BAYES_40', 0.0), (0.60, 'BAYES_50', 0.5), (0.80, 'BAYES_60', 2.5),
         (0.95, 'BAYES_80', 3.5), (0.99, 'BAYES_95', 5.0), (2.0, 'BAYES_99', 5.5)]


def band(p, bands=BANDS):
    for hi, name, w in bands:
        if p < hi:
            return name, w
    return bands[-1][1], bands[-1][2]


def load(nobayes, feat):
    score = {}
    syms = {}
    for line in open(nobayes):
        f = line.rstrip('\n').split('\t')
        score[f[1]] = float(f[2])
        syms[f[1]] = f[4:]
    msgs = []
    for line in open(feat):
        m = json.loads(line)
        m['score0'] = score[m['path']]
        m['syms'] = syms[m['path']]
        msgs.append(m)
    return msgs


def split_of(path):
    folder = path.split('/')[-2]
    name = path.split('/')[-1]
    return folder, name


def assign(msgs):
    """train/test and TRAIN fold as spam_corpus does (index in the TRAIN list % 5)."""
    hard = sorted(m['path'] for m in msgs if split_of(m['path'])[0] == 'hard-ham-1')
    parity = {p: i % 2 for i, p in enumerate(hard)}
    train, test = [], []
    for m in msgs:
        folder, _ = split_of(m['path'])
        if folder in ('easy-ham-1', 'spam-1') or (folder == 'hard-ham-1' and parity[m['path']] == 0):
            train.append(m)
        else:
            test.append(m)
    order = {'easy-ham-1': 0, 'hard-ham-1': 1, 'spam-1': 2}
    train.sort(key=lambda m: (order[split_of(m['path'])[0]], m['path']))
    for i, m in enumerate(train):
        m['fold'] = i % FOLDS
    if BLOCKED:
        # Contiguous blocks of each folder (its files are numbered roughly in arrival order): each
        # fold is a stretch of time, so validation also sees some drift.
        by_folder = defaultdict(list)
        for m in train:
            by_folder[split_of(m['path'])[0]].append(m)
        for ms in by_folder.values():
            for i, m in enumerate(ms):
                m['fold'] = i * FOLDS // len(ms)
    return train, test


BLOCKED = False


# ---------------------------------------------------------------- token variants

def dedup(seq, cap=TOKENS_MAX):
    out, seen = [], set()
    for t in seq:
        if t not in seen:
            seen.add(t)
            out.append(t)
            if len(out) >= cap:
                break
    return out


def v1(m):
    return dedup(m['seq'])


def osb(m, window=4, kinds=('w:',), cap=TOKENS_MAX * 3, with_uni=True):
    """Orthogonal sparse bigrams over body words (Siefkes et al. 2004): each word paired
    with each of the next window-1 words, the distance in the token."""
    base = dedup(m['seq'])
    words = [t[2:] for t in m['seq'] if t.startswith('w:')]
    pairs = []
    for i in range(len(words)):
        for d in range(1, window):
            if i + d < len(words):
                pairs.append('o%d:%s %s' % (d, words[i], words[i + d]))
    return dedup((base if with_uni else []) + pairs, cap)


def bigram(m, cap=TOKENS_MAX * 2):
    return osb(m, window=2, cap=cap)


# ---------------------------------------------------------------- classifier

class Counts:
    def __init__(self):
        self.ns = self.nh = 0
        self.c = defaultdict(lambda: [0, 0])

    def learn(self, toks, spam):
        if spam:
            self.ns += 1
        else:
            self.nh += 1
        k = 0 if spam else 1
        for t in toks:
            self.c[t][k] += 1


def token_prob(b, g, ns, nh, s=0.45, x=0.5):
    b = min(b, ns)
    g = min(g, nh)
    n = b + g
    if n == 0:
        return x
    sr, hr = b / ns, g / nh
    p = sr / (sr + hr)
    return (s * x + n * p) / (s + n)


def chi2q(x2, v):
    m = x2 / 2.0
    s = t = math.exp(-m)
    for i in range(1, v // 2):
        t *= m / i
        s += t
    return min(s, 1.0)


def classify(counts, toks, comb='sum', clue_min=0.1, clues_max=400, scale=10.0, s=0.45,
             min_n=1):
    fs = []
    for t in toks:
        c = counts.c.get(t)
        if c and c[0] + c[1] < min_n:
            c = None
        f = token_prob(c[0], c[1], counts.ns, counts.nh, s) if c else 0.5
        if abs(f - 0.5) >= clue_min:
            fs.append(f)
    fs.sort(key=lambda f: -abs(f - 0.5))
    fs = fs[:clues_max]
    if not fs:
        return 0.5
    if comb == 'sum':
        e = sum(math.log(f / (1 - f)) for f in fs)
        return 1 / (1 + math.exp(max(-700, min(700, -e / scale))))
    # Robinson/Fisher chi-square
    n = len(fs)
    H = chi2q(-2.0 * sum(math.log(f) for f in fs), 2 * n)
    S = chi2q(-2.0 * sum(math.log(1 - f) for f in fs), 2 * n)
    return (1 + H - S) / 2


def probabilities(train, test, tok, **kw):
    toks = {id(m): tok(m) for m in train + test}
    allc = Counts()
    folds = [Counts() for _ in range(FOLDS)]
    for m in train:
        t = toks[id(m)]
        allc.learn(t, m['spam'])
        for k in range(FOLDS):
            if k != m['fold']:
                folds[k].learn(t, m['spam'])
    ptrain = [classify(folds[m['fold']], toks[id(m)], **kw) for m in train]
    ptest = [classify(allc, toks[id(m)], **kw) for m in test]
    if UNFAMILIAR:
        # The fraction of each message's words the counts it is judged by never saw in ham
        # (or in either class), from the same lookups the classifier makes.
        for m in train:
            m['unfam'] = unfamiliar(folds[m['fold']], toks[id(m)])
        for m in test:
            m['unfam'] = unfamiliar(allc, toks[id(m)])
    return ptrain, ptest


# ---------------------------------------------------------------- unfamiliarity

UNFAMILIAR = None  # None, 'ham' (word never in learned ham) or 'both' (never learned at all)
UNFAMILIAR_MIN_WORDS = 20
UNFAMILIAR_MIN_CHARS = 3


def plain_word(text):
    """A word of letters only (any script; inner ' and - allowed): no numbers, `$`, codes."""
    core = text.replace("'", '').replace('-', '')
    return len(text) >= UNFAMILIAR_MIN_CHARS and core.isalpha()


def unfamiliar(counts, toks):
    """Fraction of the distinct body and subject words among `toks` with no ham count (mode
    `ham`) or no count at all (`both`); None below UNFAMILIAR_MIN_WORDS such words."""
    words = [t for t in toks if t[:2] in ('w:', 's:') and plain_word(t[2:])]
    if len(words) < UNFAMILIAR_MIN_WORDS:
        return None
    zero = 0
    for t in words:
        c = counts.c.get(t)
        if c is None or (c[1] == 0 and (UNFAMILIAR == 'ham' or c[0] == 0)):
            zero += 1
    return zero / len(words)


# ---------------------------------------------------------------- figures

def figures(msgs, probs, bands=BANDS, tag=5.0):
    ham = [m['score0'] + band(p, bands)[1] for m, p in zip(msgs, probs) if not m['spam']]
    spam = [m['score0'] + band(p, bands)[1] for m, p in zip(msgs, probs) if m['spam']]
    def at(t):
        return sum(x >= t for x in spam) / len(spam) * 100, sum(x >= t for x in ham)
    hs = sorted(ham, reverse=True)
    out = {}
    out['tag'] = at(tag)
    for fp in (0.1, 1.0):
        allowed = int(fp / 100 * len(ham))
        cut = hs[allowed] + 0.001
        out[fp] = (at(cut)[0], cut)
    # bayes alone at FP <= 0.1%
    hp = sorted((p for m, p in zip(msgs, probs) if not m['spam']), reverse=True)
    sp = [p for m, p in zip(msgs, probs) if m['spam']]
    allowed = int(0.001 * len(hp))
    cut = hp[allowed]
    out['bayes0.1'] = sum(p > cut for p in sp) / len(sp) * 100
    return out


def fmt(name, f, nham):
    r, h = f['tag']
    return ('%-28s recall@5 %5.1f%%  ham@5 %2d/%d  @FP0.1%% %5.1f%% (cut %.1f)  @FP1%% %5.1f%%  bayes@0.1%% %5.1f%%'
            % (name, r, h, nham, f[0.1][0], f[0.1][1], f[1.0][0], f['bayes0.1']))


VARIANTS = {
    'v1': (v1, {}),
    'v1-chi2': (v1, {'comb': 'chi2'}),
    'v1-clues150': (v1, {'clues_max': 150}),
    'v1-clues50': (v1, {'clues_max': 50}),
    'osb4': (osb, {}),
    'osb4-chi2': (osb, {'comb': 'chi2'}),
    'osb4-s20': (osb, {'scale': 20.0}),
    'osb4-clues150': (osb, {'clues_max': 150}),
    'bigram': (bigram, {}),
}


def band_index(p):
    for i, (hi, _, _) in enumerate(BANDS):
        if p < hi:
            return i
    return len(BANDS) - 1


GRID = [x / 2 for x in range(0, 15)]  # 0 .. 7 in halves


def grid(msgs, probs, max_ham, tag=5.0):
    """Band weights of BAYES_50..BAYES_99 (non-decreasing, on GRID; the lower bands as the
    node has them) that tag the most spam of `msgs` with at most `max_ham` ham at `tag`;
    ties go to the smallest total weight. Returns (recall %, ham, weights)."""
    import itertools
    import numpy as np
    s0 = np.array([m['score0'] for m in msgs])
    bi = np.array([band_index(p) for p in probs])
    spam = np.array([m['spam'] for m in msgs])
    base = np.array([w for _, _, w in BANDS])
    best = None
    for ws in itertools.combinations_with_replacement(GRID, 5):
        w = base.copy()
        w[4:] = ws
        tot = s0 + w[bi]
        tagged = tot >= tag
        ham = int((tagged & ~spam).sum())
        if ham > max_ham:
            continue
        rec = int((tagged & spam).sum())
        key = (rec, -sum(ws))
        if best is None or key > best[0]:
            best = (key, ham, ws)
    (rec, _), ham, ws = best
    return rec * 100 / int(spam.sum()), ham, ws


def with_bands(ws):
    return [(hi, n, w) if i < 4 else (hi, n, ws[i - 4]) for i, (hi, n, w) in enumerate(BANDS)]


def with_symbols(m):
    """v1 plus one token per symbol the message fired (symbols as learned features)."""
    return dedup(['y:' + x for x in m['syms'] if x] + m['seq'])


TOKENIZERS = {'v1': v1, 'v1+symbols': with_symbols, 'osb4': osb, 'bigram': bigram,
              'osb3': lambda m: osb(m, window=3), 'osb5': lambda m: osb(m, window=5)}


def without(prefixes):
    """v1 without the features of these kinds (prefixes joined by '+', e.g. `xm+fd`)."""
    drop = tuple(p + ':' for p in prefixes.split('+'))
    return lambda m: dedup(t for t in m['seq'] if not t.startswith(drop))


UNFAM_T = [x / 20 for x in range(6, 20)]  # thresholds 0.30 .. 0.95
UNFAM_W = [x / 2 for x in range(1, 15)]  # weights 0.5 .. 7


def with_unfamiliar(msgs, probs, rule):
    """Messages as `figures` reads them, score0 raised by the unfamiliarity symbols of
    `rule`: [(threshold, weight), ...] ascending, the one highest threshold passed counts
    (a graded set: e.g. BAYES_UNFAMILIAR above 0.5, a stronger one above 0.8)."""
    out = []
    for m in msgs:
        add = 0.0
        f = m.get('unfam')
        for t, w in rule:
            if f is not None and f > t:
                add = w
        out.append({'score0': m['score0'] + add, 'spam': m['spam'], 'path': m['path']})
    return out


def unfam_report(msgs, probs, name):
    """How the fraction spreads over TRAIN ham and spam, the highest ham, and the grid."""
    import numpy as np
    base = np.array([m['score0'] + band(p)[1] for m, p in zip(msgs, probs)])
    spam = np.array([m['spam'] for m in msgs])
    frac = np.array([-1.0 if m.get('unfam') is None else m['unfam'] for m in msgs])
    print('  %s: words >= %d in %d/%d ham, %d/%d spam' % (
        name, UNFAMILIAR_MIN_WORDS, int(((frac >= 0) & ~spam).sum()), int((~spam).sum()),
        int(((frac >= 0) & spam).sum()), int(spam.sum())))
    for t in UNFAM_T:
        above = frac > t
        print('    frac > %.2f: ham %4d (ham >= 2 now: %d)  spam %3d (spam < 5 now: %d)' % (
            t, int((above & ~spam).sum()), int((above & ~spam & (base >= 2)).sum()),
            int((above & spam).sum()), int((above & spam & (base < 5)).sum())))
    hams = sorted(((frac[i], base[i], msgs[i]['path'].split('/')[-2] + '/' +
                    msgs[i]['path'].split('/')[-1][:5]) for i in range(len(msgs)) if not spam[i]),
                  reverse=True)[:10]
    print('    highest ham (frac, score now, file): ' +
          ', '.join('%.2f %.1f %s' % h for h in hams))
    ham0 = int(((base >= 5) & ~spam).sum())
    rec0 = int(((base >= 5) & spam).sum())
    def tagged(rule):
        add = np.zeros(len(msgs))
        for t, w in rule:
            add = np.where(frac > t, w, add)
        tot = base + add >= 5
        return int((tot & spam).sum()), int((tot & ~spam).sum())
    rules = [[(t, w)] for t in UNFAM_T for w in UNFAM_W]
    rules += [[(t1, w1), (t2, w2)] for t1 in UNFAM_T for t2 in UNFAM_T if t2 > t1
              for w1 in UNFAM_W for w2 in UNFAM_W if w2 > w1]
    scored = [(tagged(r), r) for r in rules]
    for label, rs in (('single', [x for x in scored if len(x[1]) == 1]),
                      ('graded pair', [x for x in scored if len(x[1]) == 2])):
        ok = [x for x in rs if x[0][1] <= ham0]
        best = max(x[0][0] for x in ok)
        # Within one spam of the best, the smallest top weight, then the most spam.
        pick = min((x for x in ok if x[0][0] >= best - 1),
                   key=lambda x: (max(w for _, w in x[1]), sum(w for _, w in x[1]), -x[0][0]))
        print('    grid %s (ham <= %d): best %d spam; picked %s -> %.1f%% (%d spam), %d ham'
              ' [now %.1f%%, %d ham]' % (
                  label, ham0, best, pick[1], pick[0][0] * 100 / spam.sum(), pick[0][0],
                  pick[0][1], rec0 * 100 / spam.sum(), ham0))


def parse_rule(text):
    """`T:W[,T:W]` -> [(T, W), ...] ascending."""
    return sorted(tuple(float(x) for x in item.split(':')) for item in text.split(','))


def parse_variant(v):
    """`NAME` of VARIANTS, or `TOKENIZER:key=value,...` (keys of classify)."""
    if v in VARIANTS:
        return VARIANTS[v]
    tok, _, rest = v.partition(':')
    kw = {}
    if tok.startswith('without-'):
        return without(tok[len('without-'):]), kw
    for item in filter(None, rest.split(',')):
        k, _, val = item.partition('=')
        kw[k] = val if k == 'comb' else (int(val) if k in ('clues_max', 'min_n') else float(val))
    return TOKENIZERS[tok], kw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('nobayes')
    ap.add_argument('feat')
    ap.add_argument('--variant', action='append')
    ap.add_argument('--test', action='store_true', help='also score TEST (once per candidate)')
    ap.add_argument('--grid', type=int, action='append',
                    help='choose band weights on TRAIN-CV allowing this many TRAIN ham at tag')
    ap.add_argument('--blocked', action='store_true',
                    help='TRAIN folds are contiguous stretches of each folder, not interleaved')
    ap.add_argument('--unfamiliar', choices=('ham', 'both'),
                    help='report the fraction of words never seen in learned ham (or at all)')
    ap.add_argument('--unfamiliar-rule', action='append',
                    help='T:W[,T:W]: score with these unfamiliarity symbols (TRAIN, and TEST with --test)')
    ap.add_argument('--min-words', type=int, default=20)
    ap.add_argument('--min-chars', type=int, default=3)
    a = ap.parse_args()
    global BLOCKED, UNFAMILIAR, UNFAMILIAR_MIN_WORDS, UNFAMILIAR_MIN_CHARS
    BLOCKED = a.blocked
    UNFAMILIAR = a.unfamiliar or ('ham' if a.unfamiliar_rule else None)
    UNFAMILIAR_MIN_WORDS, UNFAMILIAR_MIN_CHARS = a.min_words, a.min_chars
    msgs = load(a.nobayes, a.feat)
    train, test = assign(msgs)
    ntr = sum(not m['spam'] for m in train)
    nte = sum(not m['spam'] for m in test)
    for v in a.variant or ['v1']:
        tok, kw = parse_variant(v)
        ptr, pte = probabilities(train, test, tok, **kw)
        print(fmt('TRAIN-CV ' + v, figures(train, ptr), ntr), flush=True)
        if a.test:
            print(fmt('TEST     ' + v, figures(test, pte), nte), flush=True)
        if a.unfamiliar:
            unfam_report(train, ptr, 'TRAIN-CV ' + v)
        for r in a.unfamiliar_rule or []:
            rule = parse_rule(r)
            print(fmt('  TRAIN-CV unfamiliar ' + r, figures(with_unfamiliar(train, ptr, rule), ptr),
                      ntr), flush=True)
            if a.test:
                print(fmt('  TEST     unfamiliar ' + r,
                          figures(with_unfamiliar(test, pte, rule), pte), nte), flush=True)
        for max_ham in a.grid or []:
            rec, ham, ws = grid(train, ptr, max_ham)
            b = with_bands(ws)
            print('  grid ham<=%d: bands 50..99 %s' % (max_ham, ws), flush=True)
            print(fmt('  TRAIN-CV ' + v, figures(train, ptr, b), ntr), flush=True)
            if a.test:
                print(fmt('  TEST     ' + v, figures(test, pte, b), nte), flush=True)


if __name__ == '__main__':
    main()
