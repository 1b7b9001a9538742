import Foundation

/// A plan-time estimate of a run's peak memory, so that a spec that cannot fit in the machine (a
/// model a billion wide, a batch of a hundred billion images) is refused before anything is
/// allocated, naming the field to change, instead of dying in an allocation failure or swapping for
/// hours.
///
/// The estimate counts, in 4-byte floats: the parameters with their gradients and Adam's two moments
/// (and the frozen teacher when unlearning), the activations kept for the backward pass of one step's
/// images, and the training images held in memory. It is deliberately rough (within a small factor of
/// what a run really takes, erring high: `configs/mae-ours.yaml`, estimated at 655 MiB, peaks at 356 MiB)
/// and only refuses runs far beyond the machine, at 90% of its physical memory.
public struct MemoryEstimate: Sendable, CustomStringConvertible {
    public var parameterBytes: Double
    public var activationBytes: Double
    public var dataBytes: Double

    public var total: Double { parameterBytes + activationBytes + dataBytes }

    /// The share of physical memory above which a run is refused.
    public static let limitShare = 0.9

    public var description: String {
        "about \(Self.format(total)) (model and optimiser state \(Self.format(parameterBytes)), activations \(Self.format(activationBytes)), images \(Self.format(dataBytes)))"
    }

    static func format(_ bytes: Double) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
        var v = bytes
        var i = 0
        while v >= 1024 && i < units.count - 1 {
            v /= 1024
            i += 1
        }
        if v >= 1024 { return String(format: "%.1e bytes", bytes) }
        return String(format: i == 0 ? "%.0f %@" : "%.1f %@", v, units[i])
    }

    /// The machine's physical memory in bytes.
    public static var physicalMemory: Double { Double(ProcessInfo.processInfo.physicalMemory) }

    /// Per-image activation floats and parameter count of the resolved model section, in Double so
    /// that absurd sizes cannot overflow.
    static func model(_ model: JSONValue, imageSize: Double, channels: Double) -> (
        parameters: Double, activationsPerImage: Double
    ) {
        let arch = model["architecture"]?.stringValue ?? "mae"
        let m = model[arch] ?? .object(JSONObject())
        func number(_ key: String, _ fallback: Double, in section: JSONValue = m) -> Double {
            section[key]?.doubleValue ?? fallback
        }
        // A ViT encoder and decoder over n tokens of `input` values each.
        func vit(tokens n: Double, input: Double, decoderDefault: Double) -> (Double, Double) {
            let w = number("width", 128)
            let d = number("depth", 4)
            let heads = number("heads", 4)
            let r = number("mlp_ratio", 4)
            let dw = number("decoder_width", decoderDefault)
            let dd = number("decoder_depth", 2)
            let dh = number("decoder_heads", 4)
            let parameters =
                d * (4 + 2 * r) * w * w + dd * (4 + 2 * r) * dw * dw + input * (w + dw) + n * (w + dw) + w * dw
            let activations =
                d * n * (w * (10 + 3 * r) + 2 * heads * n) + dd * n * (dw * (10 + 3 * r) + 2 * dh * n) + 4 * n * input
            return (parameters, activations)
        }
        // Convolutional encoder and decoder over the levels of `section`.
        func convolutional(_ section: JSONValue) -> (Double, Double) {
            let levels = (section["channels"]?.arrayValue ?? []).compactMap(\.doubleValue)
            let chans = levels.isEmpty ? [32, 64] : levels
            var parameters = 0.0
            var activations = 0.0
            var size = imageSize
            for (i, c) in chans.enumerated() {
                let previous = i == 0 ? c : chans[i - 1]
                parameters += 2 * 9 * (previous * c + 2 * c * c)  // encoder and decoder convolutions
                activations += 2 * size * size * c * 12  // each side: convs, norms, activations
                if i < chans.count - 1 { size /= 2 }
            }
            return (parameters, activations + 4 * imageSize * imageSize * channels)
        }
        switch arch {
        case "mae":
            let p = max(number("patch_size", 4), 1)
            return vit(tokens: (imageSize / p) * (imageSize / p), input: p * p * channels, decoderDefault: 64)
        case "vq_autoencoder":
            let (parameters, activations) = convolutional(m)
            return (parameters + number("codebook_size", 256) * number("codebook_dim", 32), activations)
        case "mage":
            let tokenizer = m["tokenizer"] ?? .object(JSONObject())
            let (cp, ca) = convolutional(tokenizer)
            let levels = Double(max(1, tokenizer["channels"]?.arrayValue?.count ?? 2))
            let grid = imageSize / pow(2, levels)
            let codes = number("codebook_size", 256, in: tokenizer)
            let (tp, ta) = vit(tokens: grid * grid, input: codes, decoderDefault: 128)
            return (cp + tp + codes * number("codebook_dim", 32, in: tokenizer), ca + ta + 2 * grid * grid * codes)
        case "diffusion":
            let (parameters, activations) = convolutional(m)
            let t = number("time_embedding", 128)
            let chans = (m["channels"]?.arrayValue ?? []).compactMap(\.doubleValue)
            return (parameters + 4 * t * t + t * (chans.isEmpty ? 96 : chans.reduce(0, +)) * 2, activations)
        default:
            return (0, 0)
        }
    }

    /// The estimate for a resolved spec on a data set of `trainImages` images of `channels` channels.
    public static func of(_ resolved: JSONValue, channels: Int, trainImages: Int) -> MemoryEstimate {
        let kind = resolved["kind"]?.stringValue ?? "pretrain"
        let size = resolved["data"]?["image_size"]?.doubleValue ?? 32
        let (parameters, perImage) = model(
            resolved["model"] ?? .object(JSONObject()), imageSize: size, channels: Double(channels))
        let batch = resolved["train"]?["batch_size"]?.doubleValue ?? 32
        let forget = resolved["train"]?["forget_batch_size"]?.doubleValue ?? 32
        let images: Double
        let states: Double
        switch kind {
        case "unlearn":
            images = batch + 2 * forget  // retain, forget and noise images through student and teacher
            states = 5  // student (weights, gradients, two moments) and teacher
        case "evaluate":
            images = 0
            states = 1
        default:
            images = batch
            states = 4
        }
        return MemoryEstimate(
            parameterBytes: 4 * states * parameters, activationBytes: 4 * images * perImage,
            dataBytes: 4 * Double(trainImages) * size * size * Double(channels))
    }

    /// The field a user would change to make the run fit: the batch when activations dominate, else the
    /// model size furthest above its default.
    public func culprit(_ resolved: JSONValue) -> String {
        if activationBytes >= parameterBytes && activationBytes >= dataBytes {
            let batch = resolved["train"]?["batch_size"]?.doubleValue ?? 0
            let forget = resolved["train"]?["forget_batch_size"]?.doubleValue ?? 0
            return resolved["kind"]?.stringValue == "unlearn" && forget > batch
                ? "/train/forget_batch_size" : "/train/batch_size"
        }
        if dataBytes > parameterBytes { return "/data/image_size" }
        let arch = resolved["model"]?["architecture"]?.stringValue ?? "mae"
        let defaults: [String: Double] = [
            "patch_size": 4, "width": 128, "depth": 4, "heads": 4, "mlp_ratio": 4, "decoder_width": 64,
            "decoder_depth": 2, "decoder_heads": 4, "codebook_size": 256, "codebook_dim": 32, "time_embedding": 128,
        ]
        var best = ("/model/" + arch, 0.0)
        for (key, value) in resolved["model"]?[arch]?.objectValue ?? JSONObject() {
            if let v = value.doubleValue, let d = defaults[key], v / d > best.1 {
                best = ("/model/\(arch)/\(key)", v / d)
            }
            if let list = value.arrayValue?.compactMap(\.doubleValue), let largest = list.max(), largest / 64 > best.1 {
                best = ("/model/\(arch)/\(key)", largest / 64)
            }
        }
        return best.0
    }
}
