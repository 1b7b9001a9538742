import LetheTensor

/// A node of the parameter tree. Parameters and children are registered explicitly, in PyTorch's
/// order, so paths read `encoder.blocks.0.attn.qkv.weight` and a state dict maps 1:1 to PyTorch's.
open class Module<T: TensorScalar> {
    public private(set) var ownParameters: [(name: String, tensor: Tensor<T>)] = []
    public private(set) var children: [(name: String, module: Module<T>)] = []
    /// Names of own tensors registered as buffers: saved and loaded with the parameters (PyTorch's
    /// persistent buffers) but never trained, whatever `setTrainable` is asked.
    public private(set) var bufferNames: Set<String> = []

    public init() {}

    @discardableResult
    public func register(_ name: String, _ tensor: Tensor<T>) -> Tensor<T> {
        precondition(
            !ownParameters.contains { $0.name == name } && !children.contains { $0.name == name },
            "'\(name)' registered twice")
        ownParameters.append((name, tensor))
        return tensor
    }

    /// A fixed tensor of the state dict (MAE's sin-cos position embeddings): in `namedParameters`
    /// so checkpoints carry it, excluded from `trainableCandidates`, so it is never trained.
    @discardableResult
    public func registerBuffer(_ name: String, _ tensor: Tensor<T>) -> Tensor<T> {
        register(name, tensor)
        bufferNames.insert(name)
        tensor.requiresGrad = false
        return tensor
    }

    /// Every parameter path that is a buffer, depth first.
    public func namedBuffers(prefix: String = "") -> [(path: String, tensor: Tensor<T>)] {
        var out = ownParameters.filter { bufferNames.contains($0.name) }.map { (prefix + $0.name, $0.tensor) }
        for child in children { out += child.module.namedBuffers(prefix: prefix + child.name + ".") }
        return out
    }

    @discardableResult
    public func register<M: Module<T>>(_ name: String, _ module: M) -> M {
        precondition(
            !ownParameters.contains { $0.name == name } && !children.contains { $0.name == name },
            "'\(name)' registered twice")
        children.append((name, module))
        return module
    }

    /// Every parameter with its dotted path, depth first in registration order (PyTorch's order).
    public func namedParameters(prefix: String = "") -> [(path: String, tensor: Tensor<T>)] {
        var out = ownParameters.map { (prefix + $0.name, $0.tensor) }
        for child in children { out += child.module.namedParameters(prefix: prefix + child.name + ".") }
        return out
    }

    public var parameters: [Tensor<T>] { namedParameters().map(\.tensor) }
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.count } }

    /// Frozen parameters keep their values through `backward()` and optimiser steps. Buffers stay
    /// frozen either way.
    public func setTrainable(_ trainable: Bool) {
        let buffers = Set(namedBuffers().map { ObjectIdentifier($0.tensor) })
        for p in parameters {
            p.requiresGrad = trainable && !buffers.contains(ObjectIdentifier(p))
            if !p.requiresGrad { p.zeroGrad() }
        }
    }
}

/// Children named 0, 1, 2, ... like `nn.ModuleList`.
public final class ModuleList<T: TensorScalar, M: Module<T>>: Module<T> {
    public let items: [M]

    public init(_ items: [M]) {
        self.items = items
        super.init()
        for (i, m) in items.enumerated() { register(String(i), m) }
    }
}
