import LetheRuns
import Foundation
import LetheTensor

/// The evaluation's measures, as plain functions of features, probabilities and pixels.
enum Metrics {
    /// Fréchet distance between Gaussians fitted to two feature sets (rows of `d`):
    /// |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2).
    static func fid(_ a: [Float], _ b: [Float], d: Int) -> Double {
        let (ma, sa) = Linalg.meanAndCovariance(a, rows: a.count / d, d: d)
        let (mb, sb) = Linalg.meanAndCovariance(b, rows: b.count / d, d: d)
        return Statistics.frechet(ma, sa, mb, sb, d: d)
    }

    /// Inception score exp(E_x KL(p(y|x) || p(y))) for rows of class probabilities.
    static func inceptionScore(_ p: [Float], classes: Int) -> Double {
        Statistics.inceptionScore(p, classes: classes, weights: [Double](repeating: 1, count: p.count / classes))
    }

    /// Cosine similarity of matching rows (1 for two zero rows, 0 for one).
    static func cosines(_ a: [Float], _ b: [Float], d: Int) -> [Double] {
        (0..<(a.count / d)).map { i in
            var dot = 0.0
            var na = 0.0
            var nb = 0.0
            for j in 0..<d {
                let x = Double(a[i * d + j])
                let y = Double(b[i * d + j])
                dot += x * y
                na += x * x
                nb += y * y
            }
            return na > 0 && nb > 0 ? dot / (na * nb).squareRoot() : (na == nb ? 1 : 0)
        }
    }

    /// Mean cosine similarity of matching rows.
    static func meanCosine(_ a: [Float], _ b: [Float], d: Int) -> Double {
        let c = cosines(a, b, d: d)
        return c.reduce(0, +) / Double(max(1, c.count))
    }

    /// 1 where a row's arg-max (the first on ties) is its label, else 0.
    static func correct(_ p: [Float], classes: Int, labels: [Int]) -> [Double] {
        labels.enumerated().map { i, label in
            var best = 0
            for c in 1..<classes where p[i * classes + c] > p[i * classes + best] { best = c }
            return best == label ? 1 : 0
        }
    }

    /// Share of rows whose arg-max is the label.
    static func accuracy(_ p: [Float], classes: Int, labels: [Int]) -> Double {
        correct(p, classes: classes, labels: labels).reduce(0, +) / Double(max(1, labels.count))
    }

    /// Share of positions whose code differs between two code lists of the same images.
    static func changedShare(_ a: [[Int]], _ b: [[Int]]) -> Double {
        var changed = 0
        var total = 0
        for (x, y) in zip(a, b) {
            for (p, q) in zip(x, y) where p != q { changed += 1 }
            total += min(x.count, y.count)
        }
        return Double(changed) / Double(max(1, total))
    }

    /// Structural similarity (Wang et al. 2004) with an 11x11 Gaussian window (sigma 1.5) over the
    /// valid region, data range 1, averaged over channels and images. x, y: (N, C, H, W).
    static func ssim(_ x: Tensor<Float>, _ y: Tensor<Float>) -> Double {
        let perImage = ssimPerImage(x, y)
        return perImage.reduce(0, +) / Double(max(1, perImage.count))
    }

    /// SSIM of each image (averaged over its channels).
    static func ssimPerImage(_ x: Tensor<Float>, _ y: Tensor<Float>) -> [Double] {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let k = min(11, h, w)
        let sigma = 1.5
        var g = (0..<k).map { exp(-pow(Double($0 - k / 2), 2) / (2 * sigma * sigma)) }
        let gs = g.reduce(0, +)
        g = g.map { $0 / gs }
        let c1 = 0.01 * 0.01
        let c2 = 0.03 * 0.03
        let oh = h - k + 1
        let ow = w - k + 1
        func filter(_ plane: [Double]) -> [Double] {
            var rows = [Double](repeating: 0, count: h * ow)
            for r in 0..<h {
                for j in 0..<ow {
                    var s = 0.0
                    for t in 0..<k { s += g[t] * plane[r * w + j + t] }
                    rows[r * ow + j] = s
                }
            }
            var out = [Double](repeating: 0, count: oh * ow)
            for i in 0..<oh {
                for j in 0..<ow {
                    var s = 0.0
                    for t in 0..<k { s += g[t] * rows[(i + t) * ow + j] }
                    out[i * ow + j] = s
                }
            }
            return out
        }
        var perImage = [Double](repeating: 0, count: n)
        for p in 0..<(n * c) {
            let a = (0..<(h * w)).map { Double(x.storage[p * h * w + $0]) }
            let b = (0..<(h * w)).map { Double(y.storage[p * h * w + $0]) }
            let ma = filter(a)
            let mb = filter(b)
            let saa = filter(a.map { $0 * $0 })
            let sbb = filter(b.map { $0 * $0 })
            let sab = filter(zip(a, b).map { $0 * $1 })
            var s = 0.0
            for i in 0..<(oh * ow) {
                let va = saa[i] - ma[i] * ma[i]
                let vb = sbb[i] - mb[i] * mb[i]
                let cov = sab[i] - ma[i] * mb[i]
                s +=
                    ((2 * ma[i] * mb[i] + c1) * (2 * cov + c2))
                    / ((ma[i] * ma[i] + mb[i] * mb[i] + c1) * (va + vb + c2))
            }
            perImage[p / c] += s / Double(oh * ow) / Double(c)
        }
        return perImage
    }

    /// The first two principal components of rows of `d` (for the embedding plot).
    static func pca2(_ x: [Float], d: Int) -> [(Double, Double)] {
        let n = x.count / d
        let (mean, cov) = Linalg.meanAndCovariance(x, rows: n, d: d)
        let (_, v) = Linalg.symmetricEigen(cov, n: d)
        return (0..<n).map { i in
            var p = (0.0, 0.0)
            for j in 0..<d {
                let c = Double(x[i * d + j]) - mean[j]
                p.0 += c * v[j * d + 0]
                p.1 += c * v[j * d + min(1, d - 1)]
            }
            return p
        }
    }
}
