import LetheTensor

/// Checks an op's backward against central finite differences in Double.
///
/// eps = 1e-5 balances truncation error (~eps^2) against rounding noise (~1e-16 |loss| / eps).
///
/// The loss is `sum(f(inputs) * R)` with a fixed random R: `sum(out)` would pass for softmax and the
/// norms whatever their backward returned, since their rows sum to constants.
struct GradCheck {
    var eps = 1e-5
    var tolerance = 1e-6

    /// The worst relative error over every input element.
    func maxError(_ inputs: [Tensor<Double>], seed: UInt64 = 7, _ f: ([Tensor<Double>]) -> Tensor<Double>) -> Double {
        var rng = Philox(seed: seed)
        let probe = f(inputs)
        let r = Tensor<Double>.randn(probe.shape, rng: &rng)
        for x in inputs { x.zeroGrad() }
        (f(inputs) * r).sum().backward()
        var worst = 0.0
        for x in inputs where x.requiresGrad {
            let analytic = x.grad ?? [Double](repeating: 0, count: x.count)
            for i in 0..<x.count {
                let saved = x.storage[i]
                var values = x.storage
                values[i] = saved + eps
                x.assign(values)
                let plus = GradMode.withoutGrad { (f(inputs) * r).sum().scalar }
                values[i] = saved - eps
                x.assign(values)
                let minus = GradMode.withoutGrad { (f(inputs) * r).sum().scalar }
                values[i] = saved
                x.assign(values)
                let numeric = (plus - minus) / (2 * eps)
                let err = abs(numeric - analytic[i]) / max(1e-3, abs(numeric) + abs(analytic[i]))
                worst = max(worst, err)
            }
        }
        return worst
    }
}

func randn(_ shape: [Int], _ rng: inout Philox, grad: Bool = true) -> Tensor<Double> {
    Tensor<Double>.randn(shape, rng: &rng, requiresGrad: grad)
}
