import Foundation

/// Optimisers with PyTorch's exact update rules (torch.optim, single-tensor, non-foreach path),
/// evaluated in the same order so Float results track PyTorch's float32 ones.
public protocol Optimizer<T> {
    associatedtype T: TensorScalar
    var parameters: [Tensor<T>] { get }
    var learningRate: Double { get set }
    /// One update from the parameters' accumulated gradients (parameters without one are skipped).
    mutating func step()
    /// Everything the optimiser keeps between steps (PyTorch's `optimizer.state_dict()["state"]`), so
    /// a run that resumes takes exactly the steps an uninterrupted one would.
    var state: OptimizerState<T> { get }
    /// Restores `state`, which must come from an optimiser of the same kind over the same parameters.
    mutating func load(_ state: OptimizerState<T>) throws(OptimizerState<T>.Mismatch)
}

/// An optimiser's state: its step count and its per-parameter buffers, named `<index>.<buffer>` with
/// PyTorch's buffer names (`exp_avg`, `exp_avg_sq`, `momentum_buffer`).
public struct OptimizerState<T: TensorScalar>: Equatable {
    public var steps: Int
    public var buffers: [String: [T]]

    public init(steps: Int, buffers: [String: [T]]) {
        self.steps = steps
        self.buffers = buffers
    }

    public struct Mismatch: Error, CustomStringConvertible {
        public var description: String
    }

    /// Buffer `name` of parameter `index`, which must hold `count` values.
    func buffer(_ index: Int, _ name: String, count: Int) throws(Mismatch) -> [T] {
        guard let values = buffers["\(index).\(name)"] else {
            throw Mismatch(description: "the optimiser state has no \(index).\(name)")
        }
        guard values.count == count else {
            throw Mismatch(
                description:
                    "the optimiser state's \(index).\(name) holds \(values.count) values, the parameter \(count)")
        }
        return values
    }
}

extension Optimizer {
    public func zeroGrad() { parameters.forEach { $0.zeroGrad() } }
}

/// `torch.optim.SGD(params, lr, momentum, dampening=0, weight_decay, nesterov)`.
public struct SGD<T: TensorScalar>: Optimizer {
    public let parameters: [Tensor<T>]
    public var learningRate: Double
    public var momentum: Double
    public var weightDecay: Double
    public var nesterov: Bool
    private var buffers: [[T]?]

    public init(
        _ parameters: [Tensor<T>], lr: Double, momentum: Double = 0, weightDecay: Double = 0, nesterov: Bool = false
    ) {
        self.parameters = parameters
        self.learningRate = lr
        self.momentum = momentum
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        self.buffers = Array(repeating: nil, count: parameters.count)
    }

    // Specialised for Float: training calls it through `any Optimizer<Float>`, whose witness would
    // otherwise run the generic body, every element operation through value witnesses.
    @_specialize(where T == Float)
    public mutating func step() {
        let lr = T(learningRate)
        let mu = T(momentum)
        let wd = T(weightDecay)
        for (i, p) in parameters.enumerated() {
            guard var d = p.grad else { continue }
            if weightDecay != 0 { for j in d.indices { d[j] += wd * p.storage[j] } }
            if momentum != 0 {
                if var b = buffers[i] {
                    for j in b.indices { b[j] = mu * b[j] + d[j] }
                    buffers[i] = b
                } else {
                    buffers[i] = d
                }
                let b = buffers[i]!
                if nesterov { for j in d.indices { d[j] += mu * b[j] } } else { d = b }
            }
            var values = p.storage
            for j in values.indices { values[j] -= lr * d[j] }
            p.assign(values)
        }
    }

    public var state: OptimizerState<T> {
        var named: [String: [T]] = [:]
        for (i, b) in buffers.enumerated() { if let b { named["\(i).momentum_buffer"] = b } }
        return OptimizerState(steps: 0, buffers: named)
    }

    public mutating func load(_ state: OptimizerState<T>) throws(OptimizerState<T>.Mismatch) {
        var restored: [[T]?] = Array(repeating: nil, count: parameters.count)
        for (i, p) in parameters.enumerated() where state.buffers["\(i).momentum_buffer"] != nil {
            restored[i] = try state.buffer(i, "momentum_buffer", count: p.count)
        }
        guard state.buffers.count == restored.compactMap({ $0 }).count else {
            throw OptimizerState<T>.Mismatch(description: "the optimiser state names buffers of no parameter")
        }
        buffers = restored
    }
}

/// `torch.optim.Adam` (`decoupled: false`, weight decay added to the gradient) and
/// `torch.optim.AdamW` (`decoupled: true`, p *= 1 - lr * wd before the Adam step).
public struct Adam<T: TensorScalar>: Optimizer {
    public let parameters: [Tensor<T>]
    public var learningRate: Double
    public var beta1: Double
    public var beta2: Double
    public var eps: Double
    public var weightDecay: Double
    public let decoupled: Bool
    public private(set) var stepCount = 0
    private var m: [[T]]
    private var v: [[T]]

    public init(
        _ parameters: [Tensor<T>], lr: Double, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
        weightDecay: Double = 0, decoupled: Bool = false
    ) {
        self.parameters = parameters
        self.learningRate = lr
        (beta1, beta2) = betas
        self.eps = eps
        self.weightDecay = weightDecay
        self.decoupled = decoupled
        m = parameters.map { [T](repeating: 0, count: $0.count) }
        v = parameters.map { [T](repeating: 0, count: $0.count) }
    }

    /// AdamW with PyTorch's default weight decay of 0.01.
    public static func adamW(
        _ parameters: [Tensor<T>], lr: Double, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8,
        weightDecay: Double = 0.01
    ) -> Adam {
        Adam(parameters, lr: lr, betas: betas, eps: eps, weightDecay: weightDecay, decoupled: true)
    }

    // Specialised for Float: training calls it through `any Optimizer<Float>`, whose witness would
    // otherwise run the generic body, every element operation through value witnesses.
    @_specialize(where T == Float)
    public mutating func step() {
        stepCount += 1
        // Scalars are formed in Double, as Python forms them, then cast.
        let oneMinusB1 = T(1 - beta1)
        let b2 = T(beta2)
        let oneMinusB2 = T(1 - beta2)
        let wd = T(weightDecay)
        let decay = T(1 - learningRate * weightDecay)
        let bias1 = 1 - Foundation.pow(beta1, Double(stepCount))
        let bias2 = 1 - Foundation.pow(beta2, Double(stepCount))
        let stepSize = T(learningRate / bias1)
        let bias2Sqrt = T(bias2.squareRoot())
        let epsT = T(eps)
        for (i, p) in parameters.enumerated() {
            guard let g0 = p.grad else { continue }
            var g = g0
            if weightDecay != 0 && !decoupled {
                for j in g.indices { g[j] += wd * p.storage[j] }
            }
            // In place, through pointers: one pass over each buffer, no copies.
            let decoupledDecay = weightDecay != 0 && decoupled
            p.storage.withUnsafeMutableBufferPointer { x in
                m[i].withUnsafeMutableBufferPointer { m in
                    v[i].withUnsafeMutableBufferPointer { v in
                        g.withUnsafeBufferPointer { g in
                            for j in 0..<x.count {
                                if decoupledDecay { x[j] *= decay }
                                m[j] += (g[j] - m[j]) * oneMinusB1  // exp_avg.lerp_(grad, 1 - beta1)
                                // exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)
                                v[j] = v[j] * b2 + oneMinusB2 * g[j] * g[j]
                                let denom = v[j].squareRoot() / bias2Sqrt + epsT
                                x[j] -= stepSize * (m[j] / denom)
                            }
                        }
                    }
                }
            }
        }
    }

    public var state: OptimizerState<T> {
        var named: [String: [T]] = [:]
        for i in parameters.indices {
            named["\(i).exp_avg"] = m[i]
            named["\(i).exp_avg_sq"] = v[i]
        }
        return OptimizerState(steps: stepCount, buffers: named)
    }

    public mutating func load(_ state: OptimizerState<T>) throws(OptimizerState<T>.Mismatch) {
        guard state.buffers.count == 2 * parameters.count, state.steps >= 0 else {
            throw OptimizerState<T>.Mismatch(
                description:
                    "the optimiser state holds \(state.buffers.count) buffers; Adam over \(parameters.count) parameters keeps \(2 * parameters.count)"
            )
        }
        var (m1, v1) = (m, v)
        for (i, p) in parameters.enumerated() {
            m1[i] = try state.buffer(i, "exp_avg", count: p.count)
            v1[i] = try state.buffer(i, "exp_avg_sq", count: p.count)
        }
        (m, v, stepCount) = (m1, v1, state.steps)
    }
}
/// `torch.nn.utils.clip_grad_norm_`: scales every gradient by max_norm / (total_norm + 1e-6) when the
/// global L2 norm exceeds `maxNorm`. Returns the norm before clipping.
@discardableResult
@_specialize(where T == Float)
public func clipGradNorm<T: TensorScalar>(_ parameters: [Tensor<T>], maxNorm: Double) -> Double {
    var total = 0.0
    for p in parameters { if let g = p.grad { for x in g { total += Double(x) * Double(x) } } }
    total = total.squareRoot()
    let coef = maxNorm / (total + 1e-6)
    if coef < 1 {
        for p in parameters {
            guard var g = p.grad else { continue }
            for j in g.indices { g[j] *= T(coef) }
            p.grad = g
        }
    }
    return total
}

/// Learning rate at a step: linear warm-up from lr/warmup to lr over `warmup` steps, then constant or
/// cosine decay to `minLR` at the last step.
public struct LRSchedule: Sendable, Equatable {
    public enum Kind: String, Sendable { case constant, cosine }
    public var kind: Kind
    public var baseLR: Double
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minLR: Double

    public init(kind: Kind, baseLR: Double, warmupSteps: Int = 0, totalSteps: Int, minLR: Double = 0) {
        self.kind = kind
        self.baseLR = baseLR
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minLR = minLR
    }

    /// The rate for 0-based `step`.
    public func rate(at step: Int) -> Double {
        if step < warmupSteps { return baseLR * Double(step + 1) / Double(warmupSteps) }
        switch kind {
        case .constant: return baseLR
        case .cosine:
            let span = max(1, totalSteps - warmupSteps - 1)
            let progress = min(1, Double(step - warmupSteps) / Double(span))
            return minLR + (baseLR - minLR) * 0.5 * (1 + cos(.pi * progress))
        }
    }
}
