import LetheRuns
import LetheSpec
import LetheTensor

/// The noise n ~ N(mu, Sigma) whose teacher embedding is the forget target, in pixel space
/// (C*H*W values per image). Sigma is the identity, sigma^2 I, a diagonal, a full matrix (sampled
/// through its Cholesky factor), or the forget batch's own scalar mean and std (the authors' VQ-GAN
/// code). Diagonal and full covariances and the mean may be given or estimated from the forget set.
struct NoiseModel {
    enum Kind {
        case isotropic(sigma: Float)
        case diagonal(std: [Float])
        /// Row-major lower Cholesky factor, d x d.
        case full(cholesky: Tensor<Float>)
        case perBatch
    }
    let kind: Kind
    /// A constant, or one value per pixel; nil for per_batch.
    let mean: [Float]?
    let clamp: (Float, Float)?
    /// per_batch: also take the retain images of the step into the statistics (`per_batch_over: mixed`).
    let mixedBatch: Bool
    /// `space: standardized`: per-channel mean and std of the training images; the draw is mapped to
    /// pixels as mean + std * n.
    let standardization: (mean: [Float], std: [Float])?

    /// `forgetImages` is called only when something is estimated: (N, C, H, W) images of the forget set;
    /// `trainingImages` only for `space: standardized`.
    init(
        _ spec: UnlearnSpec.Noise,
        forgetImages: () throws -> Tensor<Float> = { throw RunError("no forget images to estimate the noise from") },
        trainingImages: () throws -> Tensor<Float> = { throw RunError("no training images to standardise with") }
    ) throws {
        clamp = spec.clamp.flatMap { $0.count == 2 ? (Float($0[0]), Float($0[1])) : nil }
        mixedBatch = spec.perBatchOver == .mixed
        switch spec.space {
        case .pixel: standardization = nil
        case .standardized: standardization = Self.channelStatistics(try trainingImages())
        }
        let shrinkage = spec.shrinkage
        let estimateMean = spec.mean == .estimate
        let needsData =
            (spec.covariance == .diagonal && spec.diagonal == nil) || (spec.covariance == .full && spec.matrix == nil)
            || (estimateMean && spec.covariance != .perBatch)
        var stats: (mean: [Double], covariance: [Double], d: Int)?
        if needsData {
            let x = try forgetImages()
            let d = x.count / x.shape[0]
            if spec.covariance == .full && spec.matrix == nil {
                let (m, cov) = Linalg.meanAndCovariance(x.storage, rows: x.shape[0], d: d)
                stats = (m, cov, d)
            } else {
                // Mean and per-pixel variance only: O(N d), not O(N d^2).
                var m = [Double](repeating: 0, count: d)
                var v = [Double](repeating: 0, count: d)
                let n = x.shape[0]
                for r in 0..<n { for j in 0..<d { m[j] += Double(x.storage[r * d + j]) } }
                for j in 0..<d { m[j] /= Double(n) }
                for r in 0..<n {
                    for j in 0..<d {
                        let e = Double(x.storage[r * d + j]) - m[j]
                        v[j] += e * e
                    }
                }
                for j in 0..<d { v[j] /= Double(max(1, n - 1)) }
                stats = (m, v, d)
            }
        }
        switch (spec.covariance, spec.mean) {
        case (.perBatch, _): mean = nil
        case (_, .estimate): mean = stats?.mean.map(Float.init)
        case (_, .value(let v)): mean = [Float(v)]
        }

        switch spec.covariance {
        case .identity:
            kind = .isotropic(sigma: 1)
        case .isotropic:
            guard let sigma = spec.sigma else {
                throw RunError("unlearn.noise.sigma is not set (the schema fills it for isotropic)")
            }
            kind = .isotropic(sigma: Float(sigma))
        case .perBatch:
            kind = .perBatch
        case .diagonal:
            var variances = spec.diagonal ?? stats!.covariance
            if spec.diagonal == nil {
                let average = variances.reduce(0, +) / Double(max(1, variances.count))
                variances = variances.map { (1 - shrinkage) * $0 + shrinkage * average }
            }
            kind = .diagonal(std: variances.map { Float($0.squareRoot()) })
        case .full:
            var matrix: [Double]
            var d: Int
            if let rows = spec.matrix {
                d = rows.count
                matrix = rows.flatMap { $0 }
                // A given PSD matrix may be singular: a jitter far below its scale makes the factor exist.
                let jitter = 1e-9 * max(1e-300, (0..<d).map { matrix[$0 * d + $0] }.max() ?? 1)
                for i in 0..<d { matrix[i * d + i] += jitter }
            } else {
                (matrix, d) = (stats!.covariance, stats!.d)
                let average = (0..<d).reduce(0) { $0 + matrix[$1 * d + $1] } / Double(d)
                for i in 0..<d { for j in 0..<d { matrix[i * d + j] *= 1 - shrinkage } }
                for i in 0..<d { matrix[i * d + i] += shrinkage * max(average, 1e-12) }
            }
            do {
                let l = try Linalg.cholesky(matrix, n: d)
                kind = .full(cholesky: Tensor(l.map(Float.init), shape: [d, d]))
            } catch {
                throw RunError(
                    "unlearn.noise: the covariance has no Cholesky factor: \(error); raise unlearn.noise.shrinkage")
            }
        }
    }

    /// Pixels per image the model needs, if it fixes them (diagonal, full, per-pixel mean).
    var dimension: Int? {
        switch kind {
        case .diagonal(let std): return std.count
        case .full(let l): return l.shape[0]
        default: return mean.flatMap { $0.count > 1 ? $0.count : nil }
        }
    }

    /// Per-channel mean and (sample) standard deviation of (N, C, H, W) images.
    static func channelStatistics(_ x: Tensor<Float>) -> (mean: [Float], std: [Float]) {
        let (n, c) = (x.shape[0], x.shape[1])
        let plane = x.count / max(1, n * c)
        var mean: [Float] = []
        var std: [Float] = []
        for ch in 0..<c {
            var sum = 0.0
            var squares = 0.0
            for b in 0..<n {
                for i in 0..<plane {
                    let v = Double(x.storage[(b * c + ch) * plane + i])
                    sum += v
                    squares += v * v
                }
            }
            let count = Double(n * plane)
            let m = sum / count
            mean.append(Float(m))
            std.append(Float(max(0, (squares - count * m * m) / max(1, count - 1)).squareRoot()))
        }
        return (mean, std)
    }

    /// A noise batch shaped like the forget batch `x`; `retain` joins the per_batch statistics when
    /// they are taken over the mixed batch.
    func sample(like x: Tensor<Float>, retain: Tensor<Float>? = nil, rng: inout Philox) throws -> Tensor<Float> {
        let n = x.shape[0]
        let d = x.count / max(1, n)
        if let need = dimension, need != d {
            throw RunError("unlearn.noise: the covariance has \(need) pixels per image, the images have \(d) (C*H*W)")
        }
        let z = Tensor<Float>.randn(x.shape, rng: &rng)
        var out: Tensor<Float>
        switch kind {
        case .isotropic(let sigma):
            out = z * sigma
        case .diagonal(let std):
            out = z * Tensor(std, shape: Array(x.shape.dropFirst())).reshaped([1] + Array(x.shape.dropFirst()))
        case .full(let l):
            // n = mu + L z per image: rows z (N, d) times L^T.
            out = z.reshaped([n, d]).matmul(l.transposed()).reshaped(x.shape)
        case .perBatch:
            // The authors' code: one scalar mean and std over the step's batch (retain and forget
            // images together), or over the forget images alone.
            let values = mixedBatch && retain != nil ? retain!.storage + x.storage : x.storage
            let m = values.reduce(0, +) / Float(values.count)
            let std = (values.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Float(max(1, values.count - 1))).squareRoot()
            out = z * std + m
        }
        if let mean {
            out = mean.count == 1 ? out + mean[0] : out + Tensor(mean, shape: [1] + Array(x.shape.dropFirst()))
        }
        if let (m, s) = standardization {
            let channels = x.shape[1]
            out = out * Tensor(s, shape: [1, channels, 1, 1]) + Tensor(m, shape: [1, channels, 1, 1])
        }
        if let (lo, hi) = clamp { out = out.clamped(lo, hi) }
        return GradMode.withoutGrad { out.detached() }
    }
}
