from django.contrib import admin

from .models import Customer, Invoice, Refund, Ticket


class ReadOnly(admin.ModelAdmin):
    """Governed records change only through proposals and the apply path, never in the admin."""

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.register(Customer, ReadOnly, list_display=("id", "name", "tier", "billing_email", "status"))
admin.site.register(Ticket, ReadOnly, list_display=("id", "subject", "status", "tags"))
admin.site.register(Invoice, ReadOnly, list_display=("id", "customer", "amount", "status"))
admin.site.register(Refund, ReadOnly, list_display=("id", "invoice", "amount", "status"))
