using Hypervisor.Core.Snapshots;
using Hypervisor.Core.X86;
using NUnit.Framework.Constraints;

namespace Hypervisor.Testing;

/// <summary>
/// NUnit constraints on a <see cref="VcpuExit"/>, in the style of <c>Is.*</c>:
/// <c>Assert.That(vm.RunToExit(), IsExit.Io(port: 0x3f8, value: 'A'))</c>,
/// <c>Assert.That(exit, IsExit.Hlt)</c>. A failure shows the whole exit as KVM reports it.
/// </summary>
public static class IsExit
{
    /// <summary>Any exit with this KVM reason.</summary>
    public static ExitConstraint Reason(KvmExitReason reason) => new(reason, $"{VcpuSnapshot.ExitName(reason)}", _ => true);

    public static ExitConstraint Hlt => Reason(KvmExitReason.Hlt);
    public static ExitConstraint Shutdown => Reason(KvmExitReason.Shutdown);
    /// <summary>The instruction budget (<see cref="TestVm.InstructionLimit"/>) ran out.</summary>
    public static ExitConstraint Intr => Reason(KvmExitReason.Intr);

    /// <summary>KVM_EXIT_IO on <paramref name="port"/>: an OUT (or with <paramref name="input"/>
    /// an IN), with <paramref name="value"/> (an OUT's data) and <paramref name="size"/> when given.</summary>
    public static ExitConstraint Io(ushort port, ulong? value = null, int? size = null, bool input = false)
    {
        string text = $"KVM_EXIT_IO {(input ? "in" : "out")} port=0x{port:x}" + (size is { } s ? $" size={s}" : "") + (value is { } v ? $" data=0x{v:x}" : "");
        return new ExitConstraint(KvmExitReason.Io, text, e =>
            e.IoPort == port && e.IoIn == input && (size == null || e.IoSize == size) && (value == null || e.IoData == value));
    }

    /// <summary>KVM_EXIT_MMIO at <paramref name="address"/>, a write (with <paramref name="value"/>) or a read.</summary>
    public static ExitConstraint Mmio(ulong address, bool write, ulong? value = null) =>
        new(KvmExitReason.Mmio, $"KVM_EXIT_MMIO {(write ? "write" : "read")} gpa=0x{address:x}" + (value is { } v ? $" data=0x{v:x}" : ""),
            e => e.MmioAddress == address && e.MmioIsWrite == write && (value == null || e.MmioData == value));
}

/// <summary>Matches a <see cref="VcpuExit"/> by reason and a predicate on its payload.</summary>
public sealed class ExitConstraint : Constraint
{
    private readonly KvmExitReason _reason;
    private readonly Func<VcpuExit, bool> _payload;

    internal ExitConstraint(KvmExitReason reason, string description, Func<VcpuExit, bool> payload)
    {
        _reason = reason;
        _payload = payload;
        Description = description;
    }

    public override string Description { get; }

    public override ConstraintResult ApplyTo<TActual>(TActual actual)
    {
        if (actual is not VcpuExit exit)
            return new ConstraintResult(this, actual, false);
        return new ExitResult(this, exit, exit.Reason == _reason && _payload(exit));
    }

    private sealed class ExitResult(IConstraint constraint, VcpuExit exit, bool success) : ConstraintResult(constraint, exit, success)
    {
        public override void WriteActualValueTo(MessageWriter writer) => writer.Write(exit.ToString());
    }
}
