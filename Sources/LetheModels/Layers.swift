import Foundation
import LetheTensor

/// `nn.Linear`: weight (out, in), bias (out); PyTorch's default init, U(-1/sqrt(in), 1/sqrt(in)).
public final class Linear<T: TensorScalar>: Module<T> {
    public let weight: Tensor<T>
    public let bias: Tensor<T>?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, rng: inout Philox) {
        let bound = T(1 / Double(inFeatures).squareRoot())
        weight = Tensor.uniform([outFeatures, inFeatures], -bound, bound, rng: &rng, requiresGrad: true)
        self.bias = bias ? Tensor.uniform([outFeatures], -bound, bound, rng: &rng, requiresGrad: true) : nil
        super.init()
        register("weight", weight)
        if let b = self.bias { register("bias", b) }
    }

    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> { x.linear(weight, bias) }
}

/// `nn.Conv2d`: weight (O, C, k, k), bias (O); PyTorch's default init with fan_in = C k k.
public final class Conv2d<T: TensorScalar>: Module<T> {
    public let weight: Tensor<T>
    public let bias: Tensor<T>?
    public let geometry: Conv2dGeometry

    public init(
        _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, bias: Bool = true,
        rng: inout Philox
    ) {
        let bound = T(1 / Double(inChannels * kernel * kernel).squareRoot())
        weight = Tensor.uniform(
            [outChannels, inChannels, kernel, kernel], -bound, bound, rng: &rng, requiresGrad: true)
        self.bias = bias ? Tensor.uniform([outChannels], -bound, bound, rng: &rng, requiresGrad: true) : nil
        geometry = Conv2dGeometry(stride: stride, padding: padding)
        super.init()
        register("weight", weight)
        if let b = self.bias { register("bias", b) }
    }

    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> { x.conv2d(weight, bias, geometry) }
}

/// `nn.LayerNorm(dim)`: weight 1, bias 0.
public final class LayerNorm<T: TensorScalar>: Module<T> {
    public let weight: Tensor<T>
    public let bias: Tensor<T>
    public let eps: T

    public init(_ dim: Int, eps: T = 1e-5) {
        weight = Tensor([T](repeating: 1, count: dim), shape: [dim], requiresGrad: true)
        bias = Tensor(zeros: [dim], requiresGrad: true)
        self.eps = eps
        super.init()
        register("weight", weight)
        register("bias", bias)
    }

    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> { x.layerNorm(weight, bias, eps: eps) }
}

/// `nn.GroupNorm(groups, channels)`: weight 1, bias 0.
public final class GroupNorm<T: TensorScalar>: Module<T> {
    public let groups: Int
    public let weight: Tensor<T>
    public let bias: Tensor<T>
    public let eps: T

    public init(groups: Int, channels: Int, eps: T = 1e-5) {
        self.groups = groups
        weight = Tensor([T](repeating: 1, count: channels), shape: [channels], requiresGrad: true)
        bias = Tensor(zeros: [channels], requiresGrad: true)
        self.eps = eps
        super.init()
        register("weight", weight)
        register("bias", bias)
    }

    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> { x.groupNorm(groups: groups, weight, bias, eps: eps) }
}

/// `nn.Embedding(count, dim)`: weight N(0, 1).
public final class Embedding<T: TensorScalar>: Module<T> {
    public let weight: Tensor<T>

    public init(_ count: Int, _ dim: Int, rng: inout Philox) {
        weight = Tensor.randn([count, dim], rng: &rng, requiresGrad: true)
        super.init()
        register("weight", weight)
    }

    public func callAsFunction(_ indices: [Int], shape: [Int]) -> Tensor<T> {
        Tensor.embedding(indices, shape: shape, weight: weight)
    }
}
