import Foundation
import LetheTensor

/// Uncertainty of the evaluation's measures: seeded percentile-bootstrap intervals, paired over test
/// images (resample r draws the same images for every model, reference and metric of a split and
/// mask, so two rows' intervals describe the same resamples), and KID over random subsets.
enum Statistics {
    /// A point estimate and its 95% percentile interval (nil when no resamples were asked for).
    struct Estimate: Equatable {
        var value: Double
        var interval: (lo: Double, hi: Double)?

        static func == (a: Estimate, b: Estimate) -> Bool {
            a.value == b.value && a.interval?.lo == b.interval?.lo && a.interval?.hi == b.interval?.hi
        }
    }

    /// Multiplicities of the n images in bootstrap resample r: n draws with replacement from a stream
    /// of its own, so a resample does not depend on which others are drawn or on the thread count.
    static func weights(n: Int, resample r: Int, rng: Philox) -> [Double] {
        var g = rng.split(UInt64(r))
        var w = [Double](repeating: 0, count: n)
        for _ in 0..<n { w[g.int(below: n)] += 1 }
        return w
    }

    /// The 2.5% and 97.5% quantiles (linear interpolation between order statistics) of `values`.
    static func percentileInterval(_ values: [Double]) -> (lo: Double, hi: Double) {
        let sorted = values.filter { !$0.isNaN }.sorted()
        guard !sorted.isEmpty else { return (.nan, .nan) }
        func quantile(_ q: Double) -> Double {
            let h = q * Double(sorted.count - 1)
            let i = Int(h.rounded(.down))
            let j = min(sorted.count - 1, i + 1)
            return sorted[i] + (h - Double(i)) * (sorted[j] - sorted[i])
        }
        return (quantile(0.025), quantile(0.975))
    }

    /// `statistic(weights)` on the whole sample (every weight 1) and on `resamples` bootstrap
    /// resamples, spread over the numeric core's threads (each resample is computed on one thread).
    static func bootstrap(
        n: Int, resamples: Int, rng: Philox, _ statistic: @Sendable ([Double]) -> Double
    ) -> Estimate {
        let value = statistic([Double](repeating: 1, count: n))
        guard resamples > 0, n > 1 else { return Estimate(value: value, interval: nil) }
        let replicates = Parallel.map(count: resamples) { r in statistic(weights(n: n, resample: r, rng: rng)) }
        return Estimate(value: value, interval: percentileInterval(replicates))
    }

    /// The mean of per-image values with its bootstrap interval.
    static func mean(_ values: [Double], resamples: Int, rng: Philox) -> Estimate {
        let n = values.count
        return bootstrap(n: n, resamples: resamples, rng: rng) { w in
            var s = 0.0
            for i in 0..<n { s += w[i] * values[i] }
            return s / Double(max(1, n))
        }
    }

    /// Inception score exp(E_x KL(p(y|x) || p(y))) of rows of class probabilities, each row weighted.
    static func inceptionScore(_ p: [Float], classes: Int, weights w: [Double]) -> Double {
        let n = p.count / classes
        let total = w.reduce(0, +)
        var marginal = [Double](repeating: 0, count: classes)
        for i in 0..<n where w[i] > 0 {
            for c in 0..<classes { marginal[c] += w[i] * Double(p[i * classes + c]) / total }
        }
        var kl = 0.0
        for i in 0..<n where w[i] > 0 {
            for c in 0..<classes {
                let q = Double(p[i * classes + c])
                if q > 0 { kl += w[i] * q * (log(q) - log(max(marginal[c], 1e-300))) }
            }
        }
        return exp(kl / total)
    }

    /// Rows of `d` features centred on their (unweighted) mean: the weighted moments below then
    /// subtract small numbers.
    struct Features: Sendable {
        let rows: Int
        let d: Int
        let centred: [Float]
        let mean: [Double]

        init(_ x: [Float], d: Int) {
            self.d = d
            rows = x.count / d
            var mean = [Double](repeating: 0, count: d)
            for r in 0..<rows { for j in 0..<d { mean[j] += Double(x[r * d + j]) } }
            for j in 0..<d { mean[j] /= Double(max(1, rows)) }
            var c = [Float](repeating: 0, count: x.count)
            for r in 0..<rows { for j in 0..<d { c[r * d + j] = Float(Double(x[r * d + j]) - mean[j]) } }
            centred = c
            self.mean = mean
        }

        /// Weighted mean and sample covariance ((sum w x x^T - N m m^T) / (N - 1), N = sum w).
        func moments(_ w: [Double]) -> (mean: [Double], covariance: [Double]) {
            let total = w.reduce(0, +)
            var m = [Double](repeating: 0, count: d)
            for r in 0..<rows where w[r] > 0 { for j in 0..<d { m[j] += w[r] * Double(centred[r * d + j]) } }
            for j in 0..<d { m[j] /= total }
            var s = Linalg.weightedGram(centred, rows: rows, d: d, weights: w)
            for i in 0..<d {
                for j in 0..<d { s[i * d + j] = (s[i * d + j] - total * m[i] * m[j]) / max(1, total - 1) }
            }
            return (zip(m, mean).map { $0 + $1 }, s)
        }
    }

    /// Fréchet distance |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2) of the weighted
    /// moments of two paired feature sets.
    static func fid(_ a: Features, _ b: Features, weights w: [Double]) -> Double {
        let (ma, sa) = a.moments(w)
        let (mb, sb) = b.moments(w)
        return frechet(ma, sa, mb, sb, d: a.d)
    }

    static func frechet(_ ma: [Double], _ sa: [Double], _ mb: [Double], _ sb: [Double], d: Int) -> Double {
        let meanTerm = zip(ma, mb).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) }
        let (values, vectors) = Linalg.symmetricEigenLAPACK(sa, n: d, vectors: true)
        // S_a^1/2 = V diag(sqrt(max(w, 0))) V^T
        var scaled = vectors
        for i in 0..<d { for k in 0..<d { scaled[i * d + k] *= max(0, values[k]).squareRoot() } }
        var vt = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for k in 0..<d { vt[k * d + i] = vectors[i * d + k] } }
        let root = Linalg.product(scaled, vt, n: d)
        var middle = Linalg.product(Linalg.product(root, sb, n: d), root, n: d)
        for i in 0..<d {
            for j in 0..<i {
                let s = (middle[i * d + j] + middle[j * d + i]) / 2
                middle[i * d + j] = s
                middle[j * d + i] = s
            }
        }
        let traceRoot = Linalg.symmetricEigenLAPACK(middle, n: d, vectors: false).values.reduce(0) {
            $0 + max(0, $1).squareRoot()
        }
        let traces = (0..<d).reduce(0) { $0 + sa[$1 * d + $1] + sb[$1 * d + $1] }
        return max(0, meanTerm + traces - 2 * traceRoot)
    }

    /// Kernel inception distance (Binkowski et al. 2018): the unbiased MMD^2 with the kernel
    /// k(x, y) = (x.y / d + 1)^3, averaged over `subsets` subsets of `size` rows of each set drawn
    /// without replacement (at most half the smaller set); the standard deviation of the subset
    /// estimates beside it (as torch-fidelity reports `kid_std`). The kernel matrices are computed once (single-precision
    /// products, summed in Double) and each subset sums its entries.
    static func kid(_ a: [Float], _ b: [Float], d: Int, subsets: Int, size: Int, rng: Philox) -> (
        mean: Double, std: Double
    ) {
        let na = a.count / d
        let nb = b.count / d
        // Subsets of at most half of the smaller set, so that they differ and their spread means
        // something (a subset as large as the set is the same subset every time).
        let m = min(size, na, nb) < min(na, nb) ? min(size, na, nb) : max(2, min(na, nb) / 2)
        guard min(na, nb) > 1 else { return (.nan, .nan) }
        func kernel(_ p: [Float], _ rp: Int, _ q: [Float], _ rq: Int) -> [Float] {
            var k = Linalg.crossProduct(p, rows: rp, q, rows: rq, d: d)
            let scale = 1 / Float(d)
            for i in k.indices {
                let v = k[i] * scale + 1
                k[i] = v * v * v
            }
            return k
        }
        let kaa = kernel(a, na, a, na)
        let kbb = kernel(b, nb, b, nb)
        let kab = kernel(a, na, b, nb)
        let estimates = Parallel.map(count: subsets) { s -> Double in
            var g = rng.split(UInt64(s))
            let ia = Array(g.permutation(na).prefix(m))
            let ib = Array(g.permutation(nb).prefix(m))
            var within = 0.0
            var across = 0.0
            for i in 0..<m {
                var rowA = 0.0
                var rowB = 0.0
                var rowAB = 0.0
                for j in 0..<m {
                    if i != j {
                        rowA += Double(kaa[ia[i] * na + ia[j]])
                        rowB += Double(kbb[ib[i] * nb + ib[j]])
                    }
                    rowAB += Double(kab[ia[i] * nb + ib[j]])
                }
                within += rowA + rowB
                across += rowAB
            }
            return within / Double(m * (m - 1)) - 2 * across / Double(m * m)
        }
        let mean = estimates.reduce(0, +) / Double(estimates.count)
        let variance = estimates.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(1, estimates.count - 1))
        return (mean, variance.squareRoot())
    }
}
