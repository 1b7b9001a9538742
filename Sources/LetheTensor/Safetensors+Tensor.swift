/// Converting between safetensors entries and tensors. Little-endian on disk, as the format says.
extension Safetensors.Entry {
    public struct UnsupportedDType: Error, Sendable, CustomStringConvertible {
        public var dtype: Safetensors.DType
        public var description: String {
            "dtype \(dtype.rawValue) cannot become a float tensor (F32, F16, BF16, F64, I64, I32 can)"
        }
    }

    /// The values as floating point. BF16 and F16 widen exactly; F64 and I64 round to nearest.
    public func values<T: TensorScalar>(as: T.Type = T.self) throws(UnsupportedDType) -> [T] {
        let n = shape.reduce(1, *)
        func word(_ i: Int, _ bytes: Int) -> UInt64 {
            var v: UInt64 = 0
            for b in 0..<bytes { v |= UInt64(data[i * bytes + b]) << (8 * b) }
            return v
        }
        switch dtype {
        case .F32: return (0..<n).map { T(Float(bitPattern: UInt32(word($0, 4)))) }
        case .F64: return (0..<n).map { T(Double(bitPattern: word($0, 8))) }
        case .F16: return (0..<n).map { T(Float(Float16(bitPattern: UInt16(word($0, 2))))) }
        case .BF16: return (0..<n).map { T(Float(bitPattern: UInt32(word($0, 2)) << 16)) }
        case .I64: return (0..<n).map { T(Int64(bitPattern: word($0, 8))) }
        case .I32: return (0..<n).map { T(Int32(bitPattern: UInt32(word($0, 4)))) }
        default: throw UnsupportedDType(dtype: dtype)
        }
    }

    /// Integer values of an I64 / I32 entry (indices, labels, step counters).
    public func integers() throws(UnsupportedDType) -> [Int] {
        let n = shape.reduce(1, *)
        switch dtype {
        case .I64:
            return (0..<n).map { i in
                Int(Int64(bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(data[i * 8 + $1]) << (8 * $1) }))
            }
        case .I32:
            return (0..<n).map { i in
                Int(Int32(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(data[i * 4 + $1]) << (8 * $1) }))
            }
        default: throw UnsupportedDType(dtype: dtype)
        }
    }

    /// A tensor's values stored as F32, F16 (round to nearest even) or BF16 (round to nearest even).
    public init<T: TensorScalar>(_ tensor: Tensor<T>, dtype: Safetensors.DType = .F32) {
        var bytes: [UInt8] = []
        func put<W: FixedWidthInteger>(_ w: W) {
            for b in 0..<(W.bitWidth / 8) { bytes.append(UInt8(truncatingIfNeeded: w >> (8 * b))) }
        }
        for v in tensor.storage {
            switch dtype {
            case .F64: put(Double(v).bitPattern)
            case .F16: put(Float16(Float(v)).bitPattern)
            case .BF16:
                let bits = Float(v).bitPattern
                if Float(v).isNaN {
                    put(UInt16(0x7FC0))
                } else {
                    put(UInt16((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16))
                }
            default: put(Float(v).bitPattern)
            }
        }
        self.init(dtype: [.F64, .F16, .BF16].contains(dtype) ? dtype : .F32, shape: tensor.shape, data: bytes)
    }

    /// An I64 entry holding integers.
    public init(integers: [Int], shape: [Int]) {
        var bytes: [UInt8] = []
        for v in integers { for b in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: Int64(v) >> (8 * b))) } }
        self.init(dtype: .I64, shape: shape, data: bytes)
    }
}
