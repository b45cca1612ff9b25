"""Data of the missing-values benchmark (`python -m safeops bench --suite missing`), NumPy only.

Gaussian tables in the setting of Le Morvan et al. ("NeuMiss networks", NeurIPS 2020; "What's a
good imputation to predict with missing values?", NeurIPS 2021):

- X ~ N(mu, S) in d dimensions, mu ~ N(0, 1) per feature, S = B B^T + 0.1 I with B [d, d/2]
  standard normal, rescaled to unit variances (correlated features, so observed values say
  something about missing ones);
- outcome t = beta0 + beta^T X with beta ~ N(0, 1) scaled so that Var(beta^T X) = 1, then
  "linear": y = t + noise, or "bowl": y = (t - 1)^2 + noise (the quadratic outcome of the 2021
  paper), noise Gaussian with the variance that makes the signal-to-noise ratio SNR = 10;
- missingness "mcar": each entry missing with probability 1/2; "mnar": Gaussian self-masking,
  P(X_j missing | X_j) = K exp(-(X_j - mu~_j)^2 / (2 s~_j^2)) with mu~_j = mu_j + 1.5,
  s~_j = 1.5, K = 0.85: 50 % missing, mostly the large values (the probability rises from 6 %
  at mu_j - 2 to 85 % at mu_j + 1.5).

Both outcomes have a Bayes predictor in closed form under both mechanisms: given the observed
values and the mask, X_mis is Gaussian (for self-masking, its Gaussian conditional times the
Gaussian masking factors of the missing coordinates), so E[t | obs, m] = mu_t and
Var[t | obs, m] = v_t are exact, and E[y | obs, m] = mu_t (linear) or (mu_t - 1)^2 + v_t (bowl).
`bayes_predict` computes it per row; `complete_bound` is the R^2 of the complete-data optimum
f(X) (SNR / (1 + SNR) in expectation), an upper bound for any predictor on data with holes.

sklearn's bundled data sets (no downloads): diabetes (regression), breast cancer (2 classes),
wine (3 classes), with holes punched: "mcar" 30 %, "mnar" a value above its column's median is
missing with probability 0.6, below it with probability 0.1 (35 % in all).
"""

import math

import numpy as np

SNR = 10.0
GAUSSIAN_MCAR_RATE = 0.5
# Gaussian self-masking: peak probability, centre and width (in standard deviations).
SELF_MASK_K, SELF_MASK_SHIFT, SELF_MASK_WIDTH = 0.85, 1.5, 1.5
SKLEARN_MCAR_RATE = 0.3
SKLEARN_MNAR_HIGH, SKLEARN_MNAR_LOW = 0.6, 0.1
OUTCOMES = ("linear", "bowl")
MECHANISMS = ("mcar", "mnar")
SKLEARN_SETS = {  # name -> task
    "diabetes": "regression",
    "breast_cancer": "classification",
    "wine": "classification",
}


class GaussianProblem:
    """One draw of the Gaussian setting's parameters (mean, covariance, outcome)."""

    def __init__(self, d, outcome, mechanism, rng):
        if outcome not in OUTCOMES or mechanism not in MECHANISMS:
            raise ValueError(f"unknown setting {outcome!r}, {mechanism!r}")
        self.d, self.outcome, self.mechanism = d, outcome, mechanism
        b = rng.normal(size=(d, max(1, d // 2)))
        cov = b @ b.T + 0.1 * np.eye(d)
        scale = 1.0 / np.sqrt(np.diag(cov))
        self.cov = cov * scale[:, None] * scale[None, :]
        self.mean = rng.normal(size=d)
        beta = rng.normal(size=d)
        self.beta = beta / math.sqrt(beta @ self.cov @ beta)  # Var(beta^T X) = 1
        self.beta0 = 1.0
        self.noise_var = self._signal_variance() / SNR

    def _signal_variance(self):
        if self.outcome == "linear":
            return 1.0
        # t ~ N(m, 1), (t - 1)^2: variance 2 + 4 (m - 1)^2
        m = self.beta0 + self.beta @ self.mean
        return 2.0 + 4.0 * (m - 1.0) ** 2

    def signal(self, t_mean, t_var=0.0):
        """E[f(X) | t ~ N(t_mean, t_var)]."""
        if self.outcome == "linear":
            return t_mean
        return (t_mean - 1.0) ** 2 + t_var

    def sample(self, n, rng):
        """(x with NaN at the missing entries, y, x complete)."""
        x = rng.multivariate_normal(self.mean, self.cov, size=n)
        t = self.beta0 + x @ self.beta
        y = self.signal(t) + rng.normal(scale=math.sqrt(self.noise_var), size=n)
        if self.mechanism == "mcar":
            p = np.full(x.shape, GAUSSIAN_MCAR_RATE)
        else:
            centre = self.mean + SELF_MASK_SHIFT
            p = SELF_MASK_K * np.exp(-0.5 * ((x - centre) / SELF_MASK_WIDTH) ** 2)
        holes = rng.random(x.shape) < p
        return np.where(holes, np.nan, x), y, x

    def bayes_predict(self, x):
        """E[y | observed values, mask] for each row of x (NaN = missing)."""
        out = np.empty(len(x))
        centre = self.mean + SELF_MASK_SHIFT
        for i, row in enumerate(x):
            mis = np.isnan(row)
            obs = ~mis
            mu = self.mean.copy()
            t_var = 0.0
            if mis.any():
                s_mo = self.cov[np.ix_(mis, obs)]
                s_oo = self.cov[np.ix_(obs, obs)]
                if obs.any():
                    gain = np.linalg.solve(s_oo, s_mo.T).T
                    mu_c = self.mean[mis] + gain @ (row[obs] - self.mean[obs])
                    cov_c = self.cov[np.ix_(mis, mis)] - gain @ s_mo.T
                else:
                    mu_c, cov_c = self.mean[mis], self.cov[np.ix_(mis, mis)]
                if self.mechanism == "mnar":  # times the masking factors: still Gaussian
                    prec_c = np.linalg.inv(cov_c)
                    prec = prec_c + np.eye(mis.sum()) / SELF_MASK_WIDTH**2
                    cov_c = np.linalg.inv(prec)
                    mu_c = cov_c @ (prec_c @ mu_c + centre[mis] / SELF_MASK_WIDTH**2)
                mu[mis] = mu_c
                mu[obs] = row[obs]
                t_var = self.beta[mis] @ cov_c @ self.beta[mis]
            else:
                mu = row
            out[i] = self.signal(self.beta0 + self.beta @ mu, t_var)
        return out

    def complete_predict(self, x_complete):
        """The complete-data optimum f(X) (no missing values)."""
        return self.signal(self.beta0 + x_complete @ self.beta)


def r2_score(y, prediction):
    """Coefficient of determination (NaN when the prediction is not finite)."""
    if not np.all(np.isfinite(prediction)):
        return float("nan")
    return float(1.0 - np.sum((y - prediction) ** 2) / np.sum((y - np.mean(y)) ** 2))


def sklearn_dataset(name):
    """(x, y, task) of one of sklearn's bundled data sets (ImportError without sklearn)."""
    from sklearn import datasets

    loaders = {
        "diabetes": datasets.load_diabetes,
        "breast_cancer": datasets.load_breast_cancer,
        "wine": datasets.load_wine,
    }
    x, y = loaders[name](return_X_y=True)
    return x.astype(np.float64), y, SKLEARN_SETS[name]


def punch_holes(x, mechanism, rng):
    """x with NaN holes: MCAR, or MNAR where values above their column's median go missing
    more often (see the module docstring)."""
    if mechanism == "mcar":
        p = np.full(x.shape, SKLEARN_MCAR_RATE)
    elif mechanism == "mnar":
        p = np.where(x > np.median(x, axis=0), SKLEARN_MNAR_HIGH, SKLEARN_MNAR_LOW)
    else:
        raise ValueError(f"unknown mechanism {mechanism!r}")
    return np.where(rng.random(x.shape) < p, np.nan, x)
