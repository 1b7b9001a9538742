// Losses, reduced by the mean as PyTorch's defaults are.

extension Tensor {
    /// `F.mse_loss`: mean of (a - b)^2 over every element.
    @_specialize(where T == Float)
    public func mseLoss(_ target: Tensor) -> Tensor { (self - target).square().mean() }

    /// `F.l1_loss`: mean of |a - b|.
    @_specialize(where T == Float)
    public func l1Loss(_ target: Tensor) -> Tensor { (self - target).abs().mean() }

    /// `F.cross_entropy` for logits (N, C) and class indices, averaged over N.
    @_specialize(where T == Float)
    public func crossEntropy(_ targets: [Int]) -> Tensor {
        let c = shape[rank - 1], n = count / c
        precondition(targets.count == n && targets.allSatisfy { $0 >= 0 && $0 < c }, "cross_entropy: \(targets.count) targets in 0..<\(c) for \(n) rows")
        let logp = logSoftmax()
        var pick = [T](repeating: 0, count: count)
        for (r, t) in targets.enumerated() { pick[r * c + t] = -1 / T(n) }
        return (logp * Tensor(pick, shape: shape)).sum()
    }
}
