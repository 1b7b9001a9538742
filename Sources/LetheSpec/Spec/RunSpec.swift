import Foundation

/// A resolved run spec as typed values: what the executor reads. Decoded once by the planner from the
/// spec with every default filled from the schemas, so these structs hold **no default values** of
/// their own (the schemas are the one source of defaults). A field is optional only where the schema
/// itself leaves it out (a split that is not given, `per_class_limit: null`, the noise settings of
/// another covariance). Member names are the schema's in camel case (`batch_size` -> `batchSize`).
public struct RunSpec: Decodable, Sendable, Equatable {
    public enum Kind: String, Decodable, Sendable, CaseIterable { case pretrain, unlearn, evaluate }

    public var version: Int
    public var kind: Kind
    public var name: String?
    public var description: String?
    public var seed: UInt64
    public var data: DataSpec
    public var task: TaskSpec
    public var model: ModelSpec
    public var unlearn: UnlearnSpec?
    public var train: TrainSpec
    public var evaluate: EvaluateSpec
    public var numerics: NumericsSpec
    public var output: OutputSpec

    /// Decodes a resolved spec (defaults filled). A failure means the schemas and these structs
    /// disagree: a bug, reported with the path that did not decode.
    public static func decode(_ resolved: JSONValue) throws -> RunSpec {
        let text = try CanonicalJSON.string(resolved.removing("/$schema"))
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(RunSpec.self, from: Data(text.utf8))
    }
}

public struct DataSpec: Decodable, Sendable, Equatable {
    public enum Dataset: String, Decodable, Sendable, CaseIterable {
        case fashionMNIST = "fashion-mnist"
        case imageFolder = "image-folder"
        case npz, npy
    }

    public struct Split: Decodable, Sendable, Equatable {
        public var classes: [Int]?
        public var indexFile: String?
    }

    public var dataset: Dataset
    public var root: String
    public var imageSize: Int
    /// Held-out share of each class when the data has no test set (absent for Fashion-MNIST).
    public var testFraction: Double?
    public var perClassLimit: Int?
    public var forget: Split?
    public var retain: Split?
    public var proxyRetain: Split?

    /// The split named as in the spec (`forget`, `retain`, `proxy_retain`).
    public func split(_ name: String) -> Split? {
        switch name {
        case "forget": return forget
        case "retain": return retain
        case "proxy_retain": return proxyRetain
        default: return nil
        }
    }
}

public struct TaskSpec: Decodable, Sendable, Equatable {
    public enum Mask: String, Decodable, Sendable, CaseIterable {
        case centerCrop = "center_crop"
        case outpaint
        case randomBox = "random_box"
    }
    public var mask: Mask
    public var ratio: Double
}

public struct ModelSpec: Decodable, Sendable, Equatable {
    public enum Architecture: String, Decodable, Sendable, CaseIterable {
        case mae
        case vqAutoencoder = "vq_autoencoder"
        case mage, diffusion
    }

    public struct MAE: Decodable, Sendable, Equatable {
        public var patchSize: Int
        public var width: Int
        public var depth: Int
        public var heads: Int
        public var mlpRatio: Double
        public var decoderWidth: Int
        public var decoderDepth: Int
        public var decoderHeads: Int
        public var pretrainMaskRatio: Double
    }

    /// A convolutional VQ autoencoder: `model.vq_autoencoder`, and MAGE's tokenizer (`model.mage.tokenizer`).
    public struct VQ: Decodable, Sendable, Equatable {
        public var channels: [Int]
        public var latentSize: Int
        public var codebookSize: Int
        public var codebookDim: Int
        public var commitment: Double
    }

    public struct MAGE: Decodable, Sendable, Equatable {
        public struct MaskRatio: Decodable, Sendable, Equatable {
            public var min: Double
            public var max: Double
            public var mean: Double
            public var std: Double
        }
        public enum Decoding: String, Decodable, Sendable, CaseIterable {
            case iterative
            case onePass = "one_pass"
        }
        public var tokenizer: VQ
        public var width: Int
        public var depth: Int
        public var heads: Int
        public var mlpRatio: Double
        public var decoderWidth: Int
        public var decoderDepth: Int
        public var decoderHeads: Int
        public var maskRatio: MaskRatio
        public var decoding: Decoding
        public var decodingSteps: Int
        public var temperature: Double
    }

    public struct Diffusion: Decodable, Sendable, Equatable {
        public enum Sampler: String, Decodable, Sendable, CaseIterable { case ddpm, ddim }
        public var channels: [Int]
        public var timeEmbedding: Int
        public var timesteps: Int
        public var betaStart: Double
        public var betaEnd: Double
        public var sampler: Sampler
        public var samplingSteps: Int
        public enum BetaSchedule: String, Decodable, Sendable, CaseIterable {
            case scaledLinear = "scaled_linear"
            case linear, cosine
        }
        public var betaSchedule: BetaSchedule
    }

    public var architecture: Architecture
    public var checkpoint: String?
    public var pretrain: String?
    public var mae: MAE?
    public var vqAutoencoder: VQ?
    public var mage: MAGE?
    public var diffusion: Diffusion?
}

public struct UnlearnSpec: Decodable, Sendable, Equatable {
    public enum Method: String, Decodable, Sendable, CaseIterable {
        case ours
        case maxLoss = "max-loss"
        case noisyLabel = "noisy-label"
        case retainLabel = "retain-label"
        case randomEncoder = "random-encoder"
    }
    public enum Distance: String, Decodable, Sendable, CaseIterable { case mse, l2 }

    public struct Noise: Decodable, Sendable, Equatable {
        public enum Covariance: String, Decodable, Sendable, CaseIterable {
            case identity, isotropic, diagonal, full
            case perBatch = "per_batch"
        }

        /// A fixed mean, or one estimated from the forget set.
        public enum Mean: Decodable, Sendable, Equatable {
            case value(Double)
            case estimate

            public init(from decoder: Decoder) throws {
                let c = try decoder.singleValueContainer()
                if let v = try? c.decode(Double.self) {
                    self = .value(v)
                } else if try c.decode(String.self) == "estimate" {
                    self = .estimate
                } else {
                    throw DecodingError.dataCorruptedError(in: c, debugDescription: "mean is a number or 'estimate'")
                }
            }
        }

        public var covariance: Covariance
        public var mean: Mean
        public var sigma: Double?
        public var diagonal: [Double]?
        public var matrix: [[Double]]?
        public var shrinkage: Double
        public var clamp: [Double]?
        public enum Target: String, Decodable, Sendable, CaseIterable { case xt, x0 }
        /// Diffusion only.
        public var target: Target?
        public enum Space: String, Decodable, Sendable, CaseIterable { case pixel, standardized }
        public var space: Space
        public enum BatchStatistics: String, Decodable, Sendable, CaseIterable { case mixed, forget }
        /// per_batch only.
        public var perBatchOver: BatchStatistics?
    }

    /// The mask of each unlearning step.
    public struct Mask: Decodable, Sendable, Equatable {
        public enum Kind: String, Decodable, Sendable, CaseIterable {
            case randomPatches = "random_patches"
            case randomBox = "random_box"
            case task
        }
        public var kind: Kind
        public var ratio: [Double]
        public var patchSize: Int
    }

    public enum RetainTerm: String, Decodable, Sendable, CaseIterable {
        case teacher
        case groundTruth = "ground_truth"
    }
    public enum VQEmbedding: String, Decodable, Sendable, CaseIterable { case continuous, quantized }

    public var method: Method
    public var alpha: Double
    public var distance: Distance
    public var normalizeEmbeddings: Bool
    public var proxyRetain: Bool
    public var noise: Noise
    public var mask: Mask
    /// retain-label only.
    public var retainTerm: RetainTerm?
    /// vq_autoencoder only.
    public var vqEmbedding: VQEmbedding?
}

public struct TrainSpec: Decodable, Sendable, Equatable {
    public struct Optimizer: Decodable, Sendable, Equatable {
        public enum Name: String, Decodable, Sendable, CaseIterable { case sgd, adam, adamw }
        public var name: Name
        public var lr: Double
        public var betas: [Double]
        public var eps: Double
        public var weightDecay: Double
        public var momentum: Double
    }

    public struct Schedule: Decodable, Sendable, Equatable {
        public enum Kind: String, Decodable, Sendable, CaseIterable { case constant, cosine }
        public var kind: Kind
        public var warmupSteps: Int
        public var minLr: Double
    }

    public var steps: Int
    public var batchSize: Int
    public var forgetBatchSize: Int
    public var optimizer: Optimizer
    public var schedule: Schedule
    public var gradClip: Double?
    public var logEvery: Int
    /// Steps between saves of the training state a run resumes from (0: on a stop request and at the
    /// end of training only). Not part of the config hash: it does not change a run's results.
    public var checkpointEvery: Int
    /// MAGE pretraining only: which of its two stages this run trains.
    public enum Stage: String, Decodable, Sendable, CaseIterable { case tokenizer, transformer }
    public var stage: Stage?
}

public struct EvaluateSpec: Decodable, Sendable, Equatable {
    public enum Metric: String, Decodable, Sendable, CaseIterable { case fid, kid, `is`, cosine, psnr, ssim, accuracy }
    public enum EmbeddingPlot: String, Decodable, Sendable, CaseIterable { case pca }

    /// One evaluation mask.
    public struct Mask: Decodable, Sendable, Equatable {
        public var mask: TaskSpec.Mask
        public var ratio: Double
    }

    /// nil: every test image of the class.
    public var testPerClass: Int?
    public var metrics: [Metric]
    public var masks: [Mask]
    public var bootstrap: Int
    public var kidSubsets: Int
    public var kidSubsetSize: Int
    public var classifierSteps: Int
    public var classifierBatchSize: Int
    public var classifierLr: Double
    public var classifierSchedule: TrainSpec.Schedule.Kind
    public var classifierMinLr: Double
    public var gridSamples: Int
    public var embeddingPlot: EmbeddingPlot
}

public struct NumericsSpec: Decodable, Sendable, Equatable {
    public enum Mode: String, Decodable, Sendable, CaseIterable { case fast, strict }
    public var mode: Mode
}

public struct OutputSpec: Decodable, Sendable, Equatable {
    public var dir: String
}
