import LetheTensor

/// A node of the parameter tree. Parameters and children are registered explicitly, in PyTorch's
/// order, so paths read `encoder.blocks.0.attn.qkv.weight` and a state dict maps 1:1 to PyTorch's.
open class Module<T: TensorScalar> {
    public private(set) var ownParameters: [(name: String, tensor: Tensor<T>)] = []
    public private(set) var children: [(name: String, module: Module<T>)] = []

    public init() {}

    @discardableResult
    public func register(_ name: String, _ tensor: Tensor<T>) -> Tensor<T> {
        precondition(
            !ownParameters.contains { $0.name == name } && !children.contains { $0.name == name },
            "'\(name)' registered twice")
        ownParameters.append((name, tensor))
        return tensor
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

    /// Frozen parameters keep their values through `backward()` and optimiser steps.
    public func setTrainable(_ trainable: Bool) {
        for p in parameters {
            p.requiresGrad = trainable
            if !trainable { p.zeroGrad() }
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
