"""Data-driven credit models of outcome attribution: the Markov removal effect and Shapley values,
computed per channel from converted and null journeys (credit_models.py is the entry point).

- Paths: a journey's channels in touch order with consecutive repeats collapsed ("a a b" → "a b",
  as the `mta` package's remove_loops). Only the `max_channels` channels with the most touches
  keep their name; the rest are grouped as `(other)`. Journeys without touches are left out of
  both models: their converted value is credited to "(no touches)" by the caller.
- Markov (order k): an absorbing chain over the states (start), the tuples of the last k channels
  of a path (shorter at its start), (conversion) and (null). Every journey adds its transitions
  from (start) through its path to (conversion) or (null); probabilities are the counts divided by
  each state's outgoing count. P = the probability of absorbing in (conversion) from (start),
  solved exactly from (I − Q) x = r. Removing channel c sends every transition into a state that
  contains c to (null); its removal effect is 1 − P₋c / P, and the converted value with touches is
  split over channels in proportion to the removal effects (all zero: linear credit instead).
  This is the absorbing-chain removal effect (what `mta` simulates with `simulate_path`), not the
  sum over observed converting paths that `mta`'s analytic `markov()` returns.
- Shapley: v(S) = the value of the converted journeys whose set of channels is within S (Zhao et
  al. 2018, as `mta.shapley`). This game is a sum of unanimity games (one per journey: it earns
  its value once all its channels are present), so its Shapley value has a closed form, exact for
  any number of channels: each journey's value split equally over its distinct channels. No
  sampling is needed; the tests check the closed form against the enumeration of all 2ⁿ
  coalitions and against `mta`.

Every model aggregates per account once and returns its point estimate and a function from account
weights (resamples × accounts: how many times each account is drawn) to the credit per channel of
each resample, so the bootstrap never goes back to the touches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from scipy import sparse

from accountlens.analysis.registry import AnalysisError

OTHER = "(other)"

# Markov resamples are solved in batches of this many transition probabilities (8 bytes each).
SOLVE_BATCH_FLOATS = 20_000_000
# The most transient states a chain is solved with (a dense inverse per resample: at 1,500
# states about 0.2 s and 18 MB each). Higher orders over many channels have up to
# channels^order states; past this the request is refused with what to change.
MAX_MARKOV_STATES = 1_500


@dataclass(frozen=True)
class CreditModel:
    """A model's credit per channel: the point estimate, and the credit under account weights
    (resamples × accounts: how many times each account is drawn) → resamples × the channels of
    a slice."""

    point: np.ndarray
    resample: Callable[[np.ndarray, slice], np.ndarray]
    notes: list[str]


@dataclass(frozen=True)
class Encoded:
    """Journeys and touches as integer arrays, what the credit models compute on. Touches are in
    (journey, seq) order."""

    account: np.ndarray  # per journey: account index, 0..n_accounts-1
    value: np.ndarray  # per journey: the outcome's value (0 for null journeys)
    converted: np.ndarray  # per journey: bool
    n_accounts: int
    journey: np.ndarray  # per touch: journey index
    channel: np.ndarray  # per touch: index into channels
    channels: list[str]

    @property
    def n_journeys(self) -> int:
        return len(self.value)

    def touched(self) -> np.ndarray:
        """Per journey: has at least one touch."""
        return np.bincount(self.journey, minlength=self.n_journeys) > 0


def group_channels(enc: Encoded, max_channels: int) -> tuple[Encoded, list[str]]:
    """Keep the `max_channels` channels with the most touches (ties: by name); the rest become
    (other). Returns the regrouped journeys and a note when any channel was grouped."""
    counts = np.bincount(enc.channel, minlength=len(enc.channels))
    present = [c for c in range(len(enc.channels)) if counts[c] > 0]
    if len(present) <= max_channels:
        return enc, []
    ranked = sorted(present, key=lambda c: (-counts[c], enc.channels[c]))
    kept = sorted(ranked[:max_channels], key=lambda c: enc.channels[c])
    names = [enc.channels[c] for c in kept] + [OTHER]
    mapping = np.full(len(enc.channels), len(kept), dtype=np.int64)
    mapping[kept] = np.arange(len(kept))
    grouped = len(present) - len(kept)
    note = f"{grouped:,} channels with the fewest touches grouped as {OTHER}"
    return replace(enc, channel=mapping[enc.channel], channels=names), [note]


def collapse_repeats(journey: np.ndarray, channel: np.ndarray) -> np.ndarray:
    """Mask of the touches that start a run of one channel within their journey."""
    keep = np.ones(len(journey), dtype=bool)
    keep[1:] = (journey[1:] != journey[:-1]) | (channel[1:] != channel[:-1])
    return keep


def _position_in_journey(journey: np.ndarray) -> np.ndarray:
    """0, 1, 2… within each journey's run of rows (rows grouped by journey)."""
    index = np.arange(len(journey))
    starts = np.ones(len(journey), dtype=bool)
    starts[1:] = journey[1:] != journey[:-1]
    return index - np.maximum.accumulate(np.where(starts, index, 0))


def linear_account_credit(enc: Encoded) -> np.ndarray:
    """Accounts × channels: converted value split equally over each journey's touches (the
    fallback of the Markov model when no channel has a removal effect)."""
    per_journey = np.bincount(enc.journey, minlength=enc.n_journeys)
    credit = enc.value[enc.journey] * enc.converted[enc.journey] / per_journey[enc.journey]
    return _account_matrix(enc.account[enc.journey], enc.channel, credit, enc.n_accounts,
                           len(enc.channels))


def _account_matrix(account: np.ndarray, column: np.ndarray, amount: np.ndarray, n_accounts: int,
                    n_columns: int) -> np.ndarray:
    flat = np.bincount(account * n_columns + column, weights=amount, minlength=n_accounts * n_columns)
    return flat.reshape(n_accounts, n_columns)


# --- Markov -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MarkovChain:
    """The chain's states and per-account transition counts."""

    n_transient: int  # (start) = 0, then the channel-tuple states
    contains: np.ndarray  # transient states × channels: the state's tuple holds the channel
    edges: np.ndarray  # per edge: from-state, to-state (n_transient = conversion, +1 = null)
    counts: sparse.csr_matrix  # accounts × edges

    def probabilities(self, weights: np.ndarray) -> np.ndarray:
        """Resamples × from × to transition probabilities (to-states include the two absorbing
        ones), from counts weighted per account."""
        counts = np.asarray((self.counts.T @ weights.T).T)
        n = self.n_transient
        matrix = np.zeros((len(weights), n, n + 2))
        matrix[:, self.edges[:, 0], self.edges[:, 1]] = counts
        out = matrix.sum(axis=2, keepdims=True)
        return np.divide(matrix, out, out=np.zeros_like(matrix), where=out > 0)


def markov_chain(enc: Encoded, order: int) -> MarkovChain:
    """Build the order-`order` chain of the journeys with touches."""
    keep = collapse_repeats(enc.journey, enc.channel)
    journey, channel = enc.journey[keep], enc.channel[keep]
    base = len(enc.channels) + 1
    position = _position_in_journey(journey)
    # A state is the tuple of the last `order` channels: digit `lag` is the channel `lag` steps
    # back (+1; 0 where the path is shorter), so the code is unique for order ≤ 4, ≤ 500 channels.
    code = channel + 1
    for lag in range(1, order):
        back = np.zeros(len(channel), dtype=np.int64)
        back[lag:] = channel[:-lag] + 1
        code = code + np.where(position >= lag, back, 0) * base**lag
    codes, state = np.unique(code, return_inverse=True)
    state = state + 1  # 0 is (start)
    n_transient = len(codes) + 1
    if n_transient > MAX_MARKOV_STATES:
        raise AnalysisError(
            f"the order-{order} Markov chain of these journeys has {n_transient:,} states over "
            f"{len(enc.channels)} channels, more than the {MAX_MARKOV_STATES:,} it is solved "
            "with: lower the rule set's markov_order or max_channels (rare channels then "
            "count as one)")
    contains = np.zeros((n_transient, len(enc.channels)), dtype=bool)
    for lag in range(order):
        digit = codes // base**lag % base
        rows = np.flatnonzero(digit > 0)
        contains[rows + 1, digit[rows] - 1] = True

    previous = np.zeros(len(state), dtype=np.int64)
    previous[1:] = state[:-1]
    previous[position == 0] = 0
    last = np.ones(len(journey), dtype=bool)
    last[:-1] = journey[1:] != journey[:-1]
    absorbing = np.where(enc.converted[journey[last]], n_transient, n_transient + 1)
    sources = np.concatenate([previous, state[last]])
    targets = np.concatenate([state, absorbing])
    accounts = enc.account[np.concatenate([journey, journey[last]])]
    edge_codes, edge = np.unique(sources * (n_transient + 2) + targets, return_inverse=True)
    edges = np.stack([edge_codes // (n_transient + 2), edge_codes % (n_transient + 2)], axis=1)
    counts = sparse.csr_matrix((np.ones(len(edge)), (accounts, edge)),
                               shape=(enc.n_accounts, len(edge_codes)))
    return MarkovChain(n_transient, contains, edges, counts)


def conversion_probabilities(chain: MarkovChain, weights: np.ndarray) -> np.ndarray:
    """Resamples × (1 + channels): P of absorbing in (conversion) from (start), with all channels
    and then with each channel removed.

    One inverse per resample: with N = (I − Q)⁻¹ and x = N r (P of conversion from each state),
    removing channel c turns the states K that contain it into (null), so P₋c = x_start − h·x_K,
    where h = N_start,K (N_K,K)⁻¹ is where a path from (start) first enters K (visits to K all
    come after the first entry). Solving (I − Q₋c) x = r for every c instead took 40× longer at
    order 2."""
    n, n_channels = chain.n_transient, chain.contains.shape[1]
    members = [np.flatnonzero(chain.contains[:, c]) for c in range(n_channels)]
    result = np.empty((len(weights), n_channels + 1))
    batch = max(1, SOLVE_BATCH_FLOATS // (n * (n + 2)))
    for begin in range(0, len(weights), batch):
        probabilities = chain.probabilities(weights[begin:begin + batch])
        fundamental = np.linalg.inv(np.eye(n) - probabilities[:, :, :n])
        converts = (fundamental @ probabilities[:, :, n:n + 1])[..., 0]
        rows = result[begin:begin + batch]
        rows[:, 0] = converts[:, 0]
        for c, states in enumerate(members, start=1):
            within = fundamental[:, states][:, :, states]
            entry = np.linalg.solve(np.swapaxes(within, 1, 2), fundamental[:, 0, states][..., None])
            rows[:, c] = converts[:, 0] - (entry[..., 0] * converts[:, states]).sum(axis=1)
    return result


def removal_effects(chain: MarkovChain, weights: np.ndarray) -> np.ndarray:
    """Resamples × channels: 1 − P₋c / P (0 where P is 0)."""
    p = conversion_probabilities(chain, weights)
    full = p[:, :1]
    effect = np.divide(full - p[:, 1:], full, out=np.zeros_like(p[:, 1:]), where=full > 0)
    return np.clip(effect, 0.0, 1.0)  # removing a channel cannot raise P; clip rounding


def markov_credit(enc: Encoded, order: int) -> CreditModel:
    """The converted value with touches split over channels by removal effect."""
    chain = markov_chain(enc, order)
    touched_value = np.bincount(enc.account, weights=enc.value * enc.converted * enc.touched(),
                                minlength=enc.n_accounts)
    linear = linear_account_credit(enc)

    def credit(weights: np.ndarray) -> np.ndarray:
        effects = removal_effects(chain, weights)
        total_effect = effects.sum(axis=1, keepdims=True)
        shares = np.divide(effects, total_effect, out=np.zeros_like(effects), where=total_effect > 0)
        result = shares * (weights @ touched_value)[:, None]
        flat = total_effect[:, 0] <= 0  # nothing converts with touches (in this resample)
        result[flat] = weights[flat] @ linear
        return result

    point = credit(np.ones((1, enc.n_accounts)))[0]
    notes = []
    if not removal_effects(chain, np.ones((1, enc.n_accounts))).any():
        notes.append("no channel has a Markov removal effect: linear credit instead")
    return CreditModel(point, lambda weights, columns: credit(weights)[:, columns], notes)


# --- Shapley ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChannelSets:
    """The distinct channel sets of the converted journeys with touches."""

    members: sparse.csr_matrix  # sets × channels, 1 where the set holds the channel
    value: sparse.csr_matrix  # accounts × sets: the converted value of the account's journeys


def channel_sets(enc: Encoded, seed: int) -> ChannelSets:
    n_channels = len(enc.channels)
    pairs = np.unique(enc.journey[enc.converted[enc.journey]] * n_channels
                      + enc.channel[enc.converted[enc.journey]])
    journey, channel = pairs // n_channels, pairs % n_channels
    if n_channels <= 62:
        keys = np.left_shift(np.int64(1), np.arange(n_channels, dtype=np.int64))
    else:  # a random 64-bit key per channel: the sum identifies a set (collisions ~2⁻⁶⁴)
        keys = np.random.default_rng(seed).integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max,
                                                    size=n_channels, dtype=np.int64)
    journey_key = np.zeros(enc.n_journeys, dtype=np.int64)
    with np.errstate(over="ignore"):
        np.add.at(journey_key, journey, keys[channel])
    touched = np.unique(journey)
    set_keys, set_of = np.unique(journey_key[touched], return_inverse=True)
    set_of_journey = np.full(enc.n_journeys, -1)
    set_of_journey[touched] = set_of
    members = sparse.csr_matrix((np.ones(len(journey)), (set_of_journey[journey], channel)),
                                shape=(len(set_keys), n_channels))
    members.sum_duplicates()
    members.data[:] = 1.0  # journeys sharing a set added their pairs more than once
    value = sparse.csr_matrix((enc.value[touched], (enc.account[touched], set_of)),
                              shape=(enc.n_accounts, len(set_keys)))
    return ChannelSets(members, value)


def shapley_credit(enc: Encoded, seed: int) -> CreditModel:
    """Exact Shapley credit: each channel set's value split equally over its channels (the
    unanimity-game identity), per account for the bootstrap."""
    sets = channel_sets(enc, seed)
    split = sparse.csr_matrix(sparse.diags(1 / np.maximum(np.asarray(sets.members.sum(axis=1)).ravel(), 1))
                              @ sets.members)
    per_account = np.asarray((sets.value @ split).todense())

    def credit(weights: np.ndarray) -> np.ndarray:
        return weights @ per_account

    notes = [f"exact Shapley values ({len(enc.channels)} channels)"]
    return CreditModel(credit(np.ones((1, enc.n_accounts)))[0],
                       lambda weights, columns: credit(weights)[:, columns], notes)
