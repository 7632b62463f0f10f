namespace Hypervisor.Svm.Hardware;

/// <summary>
/// erap_ctl, the byte at VMCB offset 05Dh that controls the Enhanced Return Address Predictor
/// (ERAPS) while the guest runs (KVM-FACTS §4).
/// </summary>
[Flags]
public enum ErapCtl : byte
{
    None = 0,
    /// <summary>In guest mode the CPU may use the full RAP size instead of 32 entries.</summary>
    AllowLargerRap = 1 << 0,
    /// <summary>The next VMRUN with this bit set clears the RAP before entering the guest.</summary>
    ClearRap = 1 << 1,
}
