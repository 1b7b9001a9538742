import LetheTensor

/// The feature network behind FID, IS, the embedding cosine and the forget-class accuracy. The
/// paper uses Inception (FID, IS) and CLIP (cosine); neither can be downloaded here, so Lethe trains
/// this small CNN on the run's own data as a cached stage. Any module with `features` and `logits`
/// can take its place.
///
///     conv 3x3/2 -> 16 -> ReLU -> conv 3x3/2 -> 32 -> ReLU -> conv 3x3/2 -> 64 -> ReLU
///     -> flatten -> fc1 (features, ReLU) -> fc2 (logits)
public final class FeatureClassifier<T: TensorScalar>: Module<T> {
    public let conv1: Conv2d<T>, conv2: Conv2d<T>, conv3: Conv2d<T>
    public let fc1: Linear<T>, fc2: Linear<T>
    public let imageSize: Int, classes: Int, featureWidth: Int

    public init(channels: Int, imageSize: Int, classes: Int, featureWidth: Int = 128, rng: inout Philox) {
        self.imageSize = imageSize
        self.classes = classes
        self.featureWidth = featureWidth
        conv1 = Conv2d(channels, 16, kernel: 3, stride: 2, padding: 1, rng: &rng)
        conv2 = Conv2d(16, 32, kernel: 3, stride: 2, padding: 1, rng: &rng)
        conv3 = Conv2d(32, 64, kernel: 3, stride: 2, padding: 1, rng: &rng)
        // Each 3x3 stride-2 convolution with padding 1 maps a side s to ceil(s / 2).
        let side = (((imageSize + 1) / 2 + 1) / 2 + 1) / 2
        fc1 = Linear(64 * side * side, featureWidth, rng: &rng)
        fc2 = Linear(featureWidth, classes, rng: &rng)
        super.init()
        register("conv1", conv1)
        register("conv2", conv2)
        register("conv3", conv3)
        register("fc1", fc1)
        register("fc2", fc2)
    }

    /// (N, C, S, S) images in [0, 1] -> (N, featureWidth).
    public func features(_ x: Tensor<T>) -> Tensor<T> {
        let h = conv3(conv2(conv1(x).relu()).relu()).relu()
        return fc1(h.reshaped([x.shape[0], -1])).relu()
    }

    public func logits(features: Tensor<T>) -> Tensor<T> { fc2(features) }

    public func callAsFunction(_ x: Tensor<T>) -> Tensor<T> { logits(features: features(x)) }
}
